//! Share groups' records (KIP-932): the share partitions of every share group, kept on the shard
//! that owns the topic partition (as Kafka keeps a `SharePartition` on the partition's leader),
//! so acquiring records and reading them from the log happen in one place, in one call.
//!
//! [`partition`] is the state machine; this file holds the shard's share partitions and the two
//! operations ShareFetch and ShareAcknowledge run on the owner: acknowledge, then acquire and
//! read. The share coordinator's durable state (`__share_group_state`) is not kept yet: a share
//! partition lives in memory and starts again from `share.auto.offset.reset` after a restart or
//! a leader change (docs/compatibility.md lists the difference).

pub mod partition;
pub mod session;

use crate::error_code as ec;
use bytes::Bytes;
use partition::{Acquired, Limits, SharePartition};
use ringlet_engine::Partition;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// What a share partition needs from its group's settings.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// `group.share.record.lock.duration.ms`
    pub lock_duration: Duration,
    pub limits: Limits,
    /// `share.auto.offset.reset=earliest` (else latest, Kafka's default).
    pub from_earliest: bool,
}

/// One acknowledgement batch of a request.
#[derive(Clone, Debug)]
pub struct AckBatch {
    pub first: i64,
    pub last: i64,
    pub types: Vec<i8>,
}

/// What one partition of a ShareFetch or ShareAcknowledge comes back with.
#[derive(Debug, Default)]
pub struct Outcome {
    pub error: i16,
    /// NONE, or INVALID_RECORD_STATE / INVALID_REQUEST for the acknowledgements.
    pub ack_error: i16,
    pub ack_message: Option<String>,
    pub records: Option<Bytes>,
    pub acquired: Vec<Acquired>,
    /// When there was nothing to acquire: the end offset to wait past, and the earliest lock
    /// deadline (a lock that expires makes records available again).
    pub wait_past: i64,
    pub next_deadline: Option<Instant>,
}

type Key = (String, String, i32);

thread_local! {
    static PARTITIONS: RefCell<HashMap<Key, SharePartition>> = RefCell::new(HashMap::new());
}

fn with_partition<T>(
    key: &Key,
    part: &Partition,
    settings: &Settings,
    f: impl FnOnce(&mut SharePartition) -> T,
) -> T {
    PARTITIONS.with(|p| {
        let mut p = p.borrow_mut();
        let offsets = part.offsets();
        let sp = p.entry(key.clone()).or_insert_with(|| {
            let start = if settings.from_earliest {
                offsets.log_start
            } else {
                offsets.high_watermark
            };
            tracing::info!(group = %key.0, topic = %key.1, partition = key.2, start, "share partition initialized");
            SharePartition::new(start)
        });
        sp.truncate_before(offsets.log_start);
        f(sp)
    })
}

/// Applies `acks` of `member` on the owner; the first refused batch names the error.
pub fn acknowledge(
    key: &Key,
    part: &Partition,
    member: &str,
    acks: &[AckBatch],
    settings: &Settings,
) -> Outcome {
    let mut out = Outcome::default();
    with_partition(key, part, settings, |sp| {
        sp.expire_locks(Instant::now(), settings.limits);
        for a in acks {
            if let Err(e) = sp.acknowledge(member, a.first, a.last, &a.types, settings.limits) {
                tracing::debug!(group = %key.0, topic = %key.1, partition = key.2, member, reason = %e.0, "acknowledgement refused");
                out.ack_error = ec::INVALID_RECORD_STATE;
                out.ack_message = Some(e.0);
            }
        }
    });
    out
}

/// ShareFetch on the owner: acknowledges, then acquires at most `max_records` records for
/// `member` and reads the batches holding them (at most `max_bytes`, but always a whole first
/// batch).
pub async fn fetch(
    key: Key,
    part: Rc<Partition>,
    member: Rc<str>,
    acks: Vec<AckBatch>,
    max_records: usize,
    max_bytes: usize,
    settings: Settings,
) -> Outcome {
    let mut out = if acks.is_empty() {
        Outcome::default()
    } else {
        acknowledge(&key, &part, &member, &acks, &settings)
    };
    if max_records == 0 {
        return out;
    }
    let now = Instant::now();
    let hw = part.high_watermark();
    let from = with_partition(&key, &part, &settings, |sp| {
        sp.expire_locks(now, settings.limits);
        let from = sp.next_fetch_offset(hw, settings.limits);
        if from.is_none() {
            out.wait_past = sp.end();
            out.next_deadline = sp.next_deadline();
        }
        from
    });
    let Some(from) = from else {
        return out;
    };
    let bytes = match part.read(from, max_bytes).await {
        Ok(r) => match r.region {
            Some(region) => match region.read_all().await {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(topic = %key.1, partition = key.2, error = %e, "share fetch: segment read failed");
                    out.error = ec::KAFKA_STORAGE_ERROR;
                    return out;
                }
            },
            None => return out,
        },
        Err(e) => {
            out.error = ec::from_log_error(&e);
            return out;
        }
    };
    // Only whole batches count: a read may end in part of one, which clients drop.
    let mut upto = from;
    let mut pos = 0;
    while let Some((base, size, last_delta)) = ringlet_format::batch::peek_offsets(&bytes[pos..]) {
        if pos + size > bytes.len() {
            break;
        }
        upto = upto.max(base + i64::from(last_delta) + 1);
        pos += size;
    }
    let upto = upto.min(hw);
    let deadline = Instant::now() + settings.lock_duration;
    out.acquired = with_partition(&key, &part, &settings, |sp| {
        sp.acquire(&member, from, upto, max_records, deadline, settings.limits)
    });
    if !out.acquired.is_empty() {
        out.records = Some(bytes.slice(..pos));
    }
    out
}

/// Releases what `member` holds in the share partition (leave, or a closed share session).
pub fn release(key: &Key, member: &str, limits: Limits) -> usize {
    PARTITIONS.with(|p| {
        p.borrow_mut()
            .get_mut(key)
            .map_or(0, |sp| sp.release_member(member, limits))
    })
}

/// The share partitions of `group` on this shard: (topic, partition, start offset, in flight).
pub fn describe_local(group: &str) -> Vec<(String, i32, i64, usize)> {
    PARTITIONS.with(|p| {
        p.borrow()
            .iter()
            .filter(|(k, _)| k.0 == group)
            .map(|(k, sp)| {
                let (a, b, c) = sp.counts();
                (k.1.clone(), k.2, sp.start(), a + b + c)
            })
            .collect()
    })
}

/// Forgets a deleted share group's partitions on this shard.
pub fn forget_group(group: &str) {
    PARTITIONS.with(|p| p.borrow_mut().retain(|k, _| k.0 != group));
}

/// The group config keys Ringlet takes (IncrementalAlterConfigs on a GROUP resource), checked
/// as Kafka's GroupConfig checks them.
pub fn validate_group_configs(
    configs: &std::collections::BTreeMap<String, String>,
    broker: &crate::config::BrokerConfig,
) -> Result<(), String> {
    let s = &broker.share_groups;
    for (k, v) in configs {
        match k.as_str() {
            "share.auto.offset.reset" if matches!(v.as_str(), "latest" | "earliest") => {}
            "share.auto.offset.reset" => {
                return Err(format!(
                    "Invalid value {v} for configuration share.auto.offset.reset: latest or earliest"
                ))
            }
            "share.isolation.level" if v == "read_uncommitted" => {}
            "share.isolation.level" => {
                return Err(format!(
                    "Invalid value {v} for configuration share.isolation.level: only read_uncommitted is supported"
                ))
            }
            "share.record.lock.duration.ms" => {
                let n: i32 = v.parse().map_err(|_| format!("{k} must be an integer"))?;
                if n < s.min_record_lock_duration_ms || n > s.max_record_lock_duration_ms {
                    return Err(format!(
                        "{k} must be between {} and {}",
                        s.min_record_lock_duration_ms, s.max_record_lock_duration_ms
                    ));
                }
            }
            other => return Err(format!("Unknown group config name: {other}")),
        }
    }
    Ok(())
}

/// The settings a share group's partitions work under: the broker's `group.share.*` keys with
/// the group's own configs over them.
pub fn settings_for(broker: &crate::broker::Broker, group: &str) -> Settings {
    let s = &broker.config.share_groups;
    let configs = broker.group_configs.read().expect("group configs lock");
    let own = configs.get(group);
    let get = |k: &str| own.and_then(|c| c.get(k));
    Settings {
        lock_duration: Duration::from_millis(
            get("share.record.lock.duration.ms")
                .and_then(|v| v.parse().ok())
                .unwrap_or(s.record_lock_duration_ms)
                .max(1) as u64,
        ),
        limits: Limits {
            delivery_count_limit: s.delivery_count_limit as i16,
            max_record_locks: i64::from(s.partition_max_record_locks),
        },
        from_earliest: get("share.auto.offset.reset").is_some_and(|v| v == "earliest"),
    }
}

/// The share-partition start offset of `group` on this shard's partition, if it has one.
pub fn start_offset(group: &str, topic: &str, partition: i32) -> Option<i64> {
    PARTITIONS.with(|p| {
        p.borrow()
            .get(&(group.to_string(), topic.to_string(), partition))
            .map(SharePartition::start)
    })
}

/// AlterShareGroupOffsets on the owner: the share partition starts again at `offset` (clamped
/// to the log), with nothing in flight.
pub fn reset(group: &str, topic: &str, partition: i32, offset: i64, part: &Partition) {
    let o = part.offsets();
    let start = offset.clamp(o.log_start, o.high_watermark);
    PARTITIONS.with(|p| {
        p.borrow_mut().insert(
            (group.to_string(), topic.to_string(), partition),
            SharePartition::new(start),
        )
    });
    tracing::info!(
        group,
        topic,
        partition,
        start,
        "share partition start offset altered"
    );
}

/// DeleteShareGroupOffsets on the owner: the group's share partition of a topic is forgotten.
pub fn forget(group: &str, topic: &str) {
    PARTITIONS.with(|p| {
        p.borrow_mut()
            .retain(|k, _| !(k.0 == group && k.1 == topic))
    });
}
