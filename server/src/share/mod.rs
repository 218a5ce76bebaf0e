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

use crate::broker::Broker;
use crate::coordinator::share_state::{self, Op, Snapshot};
use crate::error_code as ec;
use bytes::Bytes;
use partition::{Acquired, Limits, SharePartition};
use ringlet_engine::Partition;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;
use std::task::Waker;
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
    /// Whether RENEW may be among the types (the request was v2).
    pub renew_allowed: bool,
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
    /// Records are there but the in-flight window is full (`max.record.locks`): only
    /// acknowledgements, which come with the members' next requests, will free it.
    pub window_full: bool,
}

type Key = (String, String, i32);

thread_local! {
    /// Fetches waiting for a share partition to have records to hand out again (an
    /// acknowledgement or a release freed some).
    static WAITING: RefCell<HashMap<Key, Vec<Waker>>> = RefCell::new(HashMap::new());
    static PARTITIONS: RefCell<HashMap<Key, Loaded>> = RefCell::new(HashMap::new());
    /// Share partitions whose state is being read from the coordinator.
    static LOADING: RefCell<HashSet<Key>> = RefCell::new(HashSet::new());
}

/// A share partition on its shard, with the sequence number of its last durable write.
struct Loaded {
    sp: SharePartition,
    seq: i32,
}

/// Runs `f` on a loaded share partition (after the log's start is applied to it).
fn with_loaded<T>(key: &Key, part: &Partition, f: impl FnOnce(&mut Loaded) -> T) -> Option<T> {
    PARTITIONS.with(|p| {
        let mut p = p.borrow_mut();
        let l = p.get_mut(key)?;
        l.sp.truncate_before(part.log_start_offset());
        Some(f(l))
    })
}

/// Wakes the fetches waiting on the share partition.
fn changed(key: &Key) {
    if let Some(w) = WAITING.with(|w| w.borrow_mut().remove(key)) {
        w.into_iter().for_each(Waker::wake);
    }
}

/// Resolves once the share partition changes after the first poll: records acknowledged or
/// released may let a waiting fetch acquire again (new records wake it through the log).
pub fn change_of(key: Key) -> impl std::future::Future<Output = ()> {
    let mut polled = false;
    std::future::poll_fn(move |cx| {
        if polled {
            return std::task::Poll::Ready(());
        }
        polled = true;
        WAITING.with(|w| {
            w.borrow_mut()
                .entry(key.clone())
                .or_default()
                .push(cx.waker().clone())
        });
        std::task::Poll::Pending
    })
}

/// Makes sure the share partition is loaded on this shard: its state read from the group's
/// coordinator, or (none yet) started by `share.auto.offset.reset` and written there, so a
/// later leader starts where this one did. `Err(NONE)` while another request loads it.
async fn ensure_loaded(
    broker: &Arc<Broker>,
    key: &Key,
    part: &Partition,
    settings: &Settings,
) -> Result<(), i16> {
    if PARTITIONS.with(|p| p.borrow().contains_key(key)) {
        return Ok(());
    }
    if !LOADING.with(|l| l.borrow_mut().insert(key.clone())) {
        return Err(ec::NONE);
    }
    let loaded = async {
        let (g, t, p) = (&key.0, &key.1, key.2);
        match share_state::call(broker, g, t, p, Op::Read).await? {
            Some(snap) => Ok(Loaded {
                sp: SharePartition::from_runs(snap.start, &snap.runs),
                seq: snap.seq,
            }),
            None => {
                let o = part.offsets();
                let start = if settings.from_earliest {
                    o.log_start
                } else {
                    o.high_watermark
                };
                let l = Loaded {
                    sp: SharePartition::new(start),
                    seq: 1,
                };
                let snap = Snapshot {
                    seq: 1,
                    start,
                    runs: Vec::new(),
                };
                share_state::call(broker, g, t, p, Op::Write(Some(snap))).await?;
                tracing::info!(group = %g, topic = %t, partition = p, start, "share partition initialized");
                Ok(l)
            }
        }
    }
    .await;
    LOADING.with(|l| l.borrow_mut().remove(key));
    let loaded = loaded.inspect_err(|code| {
        tracing::warn!(group = %key.0, topic = %key.1, partition = key.2, error = ec::name(*code), "share partition state unavailable");
    })?;
    PARTITIONS.with(|p| p.borrow_mut().insert(key.clone(), loaded));
    Ok(())
}

/// Writes the share partition's state to the group's coordinator (after acknowledgements).
async fn persist(broker: &Arc<Broker>, key: &Key, part: &Partition) -> Result<(), i16> {
    let Some(snap) = with_loaded(key, part, |l| {
        l.seq = l.seq.wrapping_add(1).max(1);
        Snapshot {
            seq: l.seq,
            start: l.sp.start(),
            runs: l.sp.runs(),
        }
    }) else {
        return Ok(());
    };
    share_state::call(broker, &key.0, &key.1, key.2, Op::Write(Some(snap)))
        .await
        .map(|_| ())
}

/// Applies `acks` of `member` on the owner and writes the state; the first refused batch (or a
/// failed write) names the error.
pub async fn acknowledge(
    broker: &Arc<Broker>,
    key: &Key,
    part: &Partition,
    member: &str,
    acks: &[AckBatch],
    settings: &Settings,
) -> Outcome {
    let mut out = Outcome::default();
    if let Err(code) = ensure_loaded(broker, key, part, settings).await {
        out.ack_error = if code == ec::NONE {
            ec::INVALID_RECORD_STATE
        } else {
            code
        };
        return out;
    }
    let applied = with_loaded(key, part, |l| {
        let now = Instant::now();
        l.sp.expire_locks(now, settings.limits);
        let mut any = false;
        for a in acks {
            let renew_to = a.renew_allowed.then_some(now + settings.lock_duration);
            match l.sp.acknowledge(
                member,
                (a.first, a.last),
                &a.types,
                settings.limits,
                renew_to,
            ) {
                Ok(()) => any = true,
                Err(e) => {
                    tracing::debug!(group = %key.0, topic = %key.1, partition = key.2, member, reason = %e.0, "acknowledgement refused");
                    out.ack_error = ec::INVALID_RECORD_STATE;
                    out.ack_message = Some(e.0);
                }
            }
        }
        any
    });
    if applied == Some(true) {
        changed(key);
        if let Err(code) = persist(broker, key, part).await {
            out.ack_error = code;
            out.ack_message = Some("the share state could not be written".into());
        }
    }
    out
}

/// ShareFetch on the owner: acknowledges, then acquires at most `max_records` records for
/// `member` and reads the batches holding them (at most `max_bytes`, but always a whole first
/// batch).
#[allow(clippy::too_many_arguments)]
pub async fn fetch(
    broker: Arc<Broker>,
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
        acknowledge(&broker, &key, &part, &member, &acks, &settings).await
    };
    if max_records == 0 {
        return out;
    }
    match ensure_loaded(&broker, &key, &part, &settings).await {
        Ok(()) => {}
        Err(ec::NONE) => {
            out.wait_past = part.high_watermark();
            return out;
        }
        Err(code) => {
            out.error = code;
            return out;
        }
    }
    let now = Instant::now();
    let hw = part.high_watermark();
    let from = with_loaded(&key, &part, |l| {
        l.sp.expire_locks(now, settings.limits);
        let from = l.sp.next_fetch_offset(hw, settings.limits);
        if from.is_none() {
            out.wait_past = l.sp.end();
            out.next_deadline = l.sp.next_deadline();
            out.window_full = l.sp.end() < hw;
        }
        from
    })
    .flatten();
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
    out.acquired = with_loaded(&key, &part, |l| {
        l.sp.acquire(&member, from, upto, max_records, deadline, settings.limits)
    })
    .unwrap_or_default();
    if !out.acquired.is_empty() {
        out.records = Some(bytes.slice(..pos));
    }
    out
}

/// Leadership of a partition came or went: its share partitions are read again from the
/// coordinator when next served (a former leader's memory may be stale).
pub fn follow_leadership() {
    crate::cluster::replica::on_leadership_change(|topic, partition, _| {
        PARTITIONS.with(|p| {
            p.borrow_mut()
                .retain(|k, _| !(k.1 == topic && k.2 == partition))
        });
    });
}

/// Releases what `member` holds in the share partition (leave, or a closed share session).
pub fn release(key: &Key, member: &str, limits: Limits) -> usize {
    let n = PARTITIONS.with(|p| {
        p.borrow_mut()
            .get_mut(key)
            .map_or(0, |l| l.sp.release_member(member, limits))
    });
    if n > 0 {
        changed(key);
    }
    n
}

/// The share partitions of `group` on this shard: (topic, partition, start offset, in flight).
pub fn describe_local(group: &str) -> Vec<(String, i32, i64, usize)> {
    PARTITIONS.with(|p| {
        p.borrow()
            .iter()
            .filter(|(k, _)| k.0 == group)
            .map(|(k, l)| {
                let (a, b, c) = l.sp.counts();
                (k.1.clone(), k.2, l.sp.start(), a + b + c)
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
    let own = broker.group_configs(group);
    let get = |k: &str| own.get(k);
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
            .map(|l| l.sp.start())
    })
}

/// AlterShareGroupOffsets on the owner: the share partition starts again at `offset` (clamped
/// to the log), with nothing in flight, written to the coordinator.
pub async fn reset(
    broker: &Arc<Broker>,
    group: &str,
    topic: &str,
    partition: i32,
    offset: i64,
    part: &Partition,
) -> Result<(), i16> {
    let o = part.offsets();
    let start = offset.clamp(o.log_start, o.high_watermark);
    let key = (group.to_string(), topic.to_string(), partition);
    let seq = PARTITIONS.with(|p| {
        p.borrow()
            .get(&key)
            .map_or(1, |l| l.seq.wrapping_add(1).max(1))
    });
    let snap = Snapshot {
        seq,
        start,
        runs: Vec::new(),
    };
    share_state::call(broker, group, topic, partition, Op::Write(Some(snap))).await?;
    PARTITIONS.with(|p| {
        p.borrow_mut().insert(
            key,
            Loaded {
                sp: SharePartition::new(start),
                seq,
            },
        )
    });
    tracing::info!(
        group,
        topic,
        partition,
        start,
        "share partition start offset altered"
    );
    Ok(())
}

/// DeleteShareGroupOffsets on the owner: the group's share partition of a topic is forgotten.
pub fn forget(group: &str, topic: &str) {
    PARTITIONS.with(|p| {
        p.borrow_mut()
            .retain(|k, _| !(k.0 == group && k.1 == topic))
    });
}
