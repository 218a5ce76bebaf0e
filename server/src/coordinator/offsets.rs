//! The offsets log: committed offsets as records of `__consumer_offsets` (Kafka's key and
//! value formats), replayed into group state when a shard takes over a partition, and commits
//! appended (and replicated) through the engine.

use super::*;
use crate::broker::Broker;
use crate::error_code as ec;
use bytes::Bytes;
use ringlet_engine::log_manager;
use ringlet_format::batch;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::records::{legacy_offset_key, offset_key, offset_value, parse_key, parse_value};

/// Replays this shard's offsets partitions into group state (start-up, before serving).
pub async fn load_local(broker: &Broker) -> usize {
    let mut loaded = 0;
    let names = |id: [u8; 16]| broker.topic_name(id);
    for (tp, part) in log_manager::all() {
        if &*tp.topic != OFFSETS_TOPIC {
            continue;
        }
        loaded += load_partition(&part, false, &names).await;
    }
    // Groups with only tombstones left are gone.
    GROUPS.with(|g| g.borrow_mut().retain(|_, grp| grp.has_state()));
    loaded
}

/// Replays one offsets partition into group state; returns the records read.
pub(super) async fn load_partition(
    part: &std::rc::Rc<ringlet_engine::Partition>,
    to_log_end: bool,
    names: &dyn Fn([u8; 16]) -> Option<String>,
) -> usize {
    let mut loaded = 0;
    // The groups of this partition (every record of a group is in its partition): a marker
    // here settles their pending transactional offsets only.
    let mut touched: std::collections::HashSet<String> = std::collections::HashSet::new();
    {
        let mut offset = part.log_start_offset();
        loop {
            let r = match part.read_upto(offset, 4 << 20, to_log_end).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "reading the offsets log failed");
                    break;
                }
            };
            let Some(region) = r.region else { break };
            let Ok(bytes) = region.read_all().await else {
                break;
            };
            let mut rest = &bytes[..];
            let mut progressed = false;
            while let Ok(b) = batch::next_batch(rest) {
                let h = batch::BatchHeader::parse(b).expect("validated batch");
                if let Some(m) = ringlet_format::control::marker_of(&h, b) {
                    let commit = m == ringlet_format::control::Marker::Commit;
                    settle_txn(|name| touched.contains(name), h.producer_id, commit);
                }
                // A transaction's offsets wait for its marker.
                let txn = (h.is_transactional() && !h.is_control()).then_some(h.producer_id);
                let res = batch::for_each_record(b, |_, k, v| {
                    if k.is_some_and(|k| {
                        super::share_state::replay(k, v) || super::consumer_log::replay(k, v, names)
                    }) {
                        loaded += 1;
                        return;
                    }
                    let Some((group, topic, partition, legacy)) = k.and_then(parse_key) else {
                        return;
                    };
                    if !touched.contains(&group) {
                        touched.insert(group.clone());
                    }
                    GROUPS.with(|g| {
                        let mut g = g.borrow_mut();
                        let grp = g.entry(group).or_insert_with(Group::new);
                        match (v.and_then(|v| parse_value(v, legacy)), txn) {
                            (Some(c), Some(pid)) => {
                                grp.pending_txn
                                    .entry(pid)
                                    .or_default()
                                    .insert((topic, partition), c);
                            }
                            (Some(c), None) => {
                                grp.offsets.insert((topic, partition), c);
                            }
                            (None, _) => {
                                grp.offsets.remove(&(topic, partition));
                            }
                        }
                    });
                    loaded += 1;
                });
                if let Err(e) = res {
                    tracing::warn!(error = %e, "skipping an unreadable batch in the offsets log");
                }
                let h = batch::BatchHeader::parse(b).expect("validated batch");
                offset = h.last_offset() + 1;
                progressed = true;
                rest = &rest[b.len()..];
            }
            if !progressed {
                break;
            }
        }
    }
    loaded
}

/// Appends to a coordinator's partition (`__consumer_offsets`, `__transaction_state`); in a
/// cluster only as its leader, and acknowledged once every in-sync replica has it (Kafka writes
/// them with acks=all, within `offsets.commit.timeout.ms`, 5 s).
pub(crate) async fn replicated_append(
    topic: &str,
    part: &std::rc::Rc<ringlet_engine::Partition>,
    partition: i32,
    records: Bytes,
) -> Result<(), i16> {
    append_acked(topic, part, partition, records, false).await
}

/// As [`replicated_append`]; `marker` appends a transaction marker (a control batch) to any
/// partition, whose leader this broker is.
pub(crate) async fn append_acked(
    topic: &str,
    part: &std::rc::Rc<ringlet_engine::Partition>,
    partition: i32,
    records: Bytes,
    marker: bool,
) -> Result<(), i16> {
    // In a cluster only the leader writes, whatever this shard has open: a broker restarted
    // before its first view has the partition's log but no role, and must not acknowledge.
    let epoch = if crate::cluster::replica::clustered() {
        Some(
            crate::cluster::replica::check_produce(topic, partition, -1).map_err(|(code, _)| {
                match code {
                    c if marker => c,
                    ec::NOT_LEADER_OR_FOLLOWER => ec::NOT_COORDINATOR,
                    _ => ec::COORDINATOR_NOT_AVAILABLE,
                }
            })?,
        )
    } else {
        None
    };
    let appended = if marker {
        part.append_marker(records).await
    } else {
        part.append(records).await
    };
    let info = appended.map_err(|e| ec::from_log_error(&e))?;
    if let Some(epoch) = epoch {
        crate::cluster::replica::complete_produce(
            part.clone(),
            topic,
            partition,
            epoch,
            info.last_offset,
            -1,
            Duration::from_secs(5),
        )
        .await
        .map_err(|(code, _)| match code {
            // A marker's answer goes to the coordinator, which retries on any of these.
            c if marker => c,
            ec::NOT_LEADER_OR_FOLLOWER => ec::NOT_COORDINATOR,
            ec::NOT_ENOUGH_REPLICAS | ec::NOT_ENOUGH_REPLICAS_AFTER_APPEND => {
                ec::COORDINATOR_NOT_AVAILABLE
            }
            c => c,
        })?;
    }
    Ok(())
}

/// Appends commits to the group's offsets partition, then records them. Returns a code.
pub async fn commit(group_id: &str, partition: i32, commits: Vec<(String, i32, Committed)>) -> i16 {
    let Some(part) = log_manager::get(OFFSETS_TOPIC, partition) else {
        return ec::NOT_COORDINATOR;
    };
    let keys: Vec<(Vec<u8>, Vec<u8>)> = commits
        .iter()
        .map(|(t, p, c)| (offset_key(group_id, t, *p), offset_value(c)))
        .collect();
    let recs: Vec<batch::KeyValue<'_>> = keys
        .iter()
        .map(|(k, v)| (Some(k.as_slice()), Some(v.as_slice())))
        .collect();
    let b = batch::build_keyed_batch(&recs, ringlet_engine::config::now_ms());
    if let Err(code) = replicated_append(OFFSETS_TOPIC, &part, partition, Bytes::from(b)).await {
        tracing::warn!(
            group = group_id,
            error = ec::name(code),
            "writing committed offsets failed"
        );
        return code;
    }
    GROUPS.with(|g| {
        let mut g = g.borrow_mut();
        let grp = g.entry(group_id.to_string()).or_insert_with(Group::new);
        for (t, p, c) in commits {
            grp.offsets.insert((t, p), c);
        }
    });
    ec::NONE
}

/// Appends what changed in a group's KIP-848 state (`consumer_log`) to its offsets partition;
/// the caller answers after it. A failed append makes the next one rewrite every record.
pub async fn persist_group(broker: &Broker, group_id: &str) -> i16 {
    let ids = |t: &str| broker.topic_id(t);
    let records = GROUPS.with(|g| {
        g.borrow_mut()
            .get_mut(group_id)
            .map(|grp| super::consumer_log::changes(group_id, grp, &ids))
            .unwrap_or_default()
    });
    if records.is_empty() {
        return ec::NONE;
    }
    let partition = partition_for(group_id, broker.config.offsets_topic_num_partitions);
    let appended = match log_manager::get(OFFSETS_TOPIC, partition) {
        Some(part) => {
            let recs: Vec<batch::KeyValue<'_>> = records
                .iter()
                .map(|(k, v)| (Some(k.as_slice()), v.as_deref()))
                .collect();
            let b = batch::build_keyed_batch(&recs, ringlet_engine::config::now_ms());
            replicated_append(OFFSETS_TOPIC, &part, partition, Bytes::from(b)).await
        }
        None => Err(ec::NOT_COORDINATOR),
    };
    match appended {
        Ok(()) => ec::NONE,
        Err(code) => {
            tracing::warn!(
                group = group_id,
                error = ec::name(code),
                "writing consumer group state failed"
            );
            GROUPS.with(|g| {
                if let Some(grp) = g.borrow_mut().get_mut(group_id) {
                    grp.written.values_mut().for_each(|d| *d = 0);
                }
            });
            code
        }
    }
}

/// Writes tombstones for a group's offsets (OffsetDelete, DeleteGroups, retention).
pub async fn delete_offsets(broker: &Arc<Broker>, group_id: &str, parts: &[(String, i32)]) -> i16 {
    let Some((_, partition)) = owner(broker, group_id) else {
        return ec::COORDINATOR_NOT_AVAILABLE;
    };
    let Some(part) = log_manager::get(OFFSETS_TOPIC, partition) else {
        return ec::NOT_COORDINATOR;
    };
    if parts.is_empty() {
        return ec::NONE;
    }
    // Both layouts: an offset written by an older build must not come back (records.rs).
    let keys: Vec<Vec<u8>> = parts
        .iter()
        .flat_map(|(t, p)| {
            [
                offset_key(group_id, t, *p),
                legacy_offset_key(group_id, t, *p),
            ]
        })
        .collect();
    let recs: Vec<batch::KeyValue<'_>> = keys.iter().map(|k| (Some(k.as_slice()), None)).collect();
    let b = batch::build_keyed_batch(&recs, ringlet_engine::config::now_ms());
    if let Err(code) = replicated_append(OFFSETS_TOPIC, &part, partition, Bytes::from(b)).await {
        return code;
    }
    GROUPS.with(|g| {
        if let Some(grp) = g.borrow_mut().get_mut(group_id) {
            for k in parts {
                grp.offsets.remove(k);
            }
        }
    });
    ec::NONE
}

/// TxnOffsetCommit: appends the offsets to the group's offsets partition as part of the
/// producer's transaction (a transactional batch with its id and epoch); they stay pending until
/// the transaction's marker. Returns a code.
pub async fn txn_commit(
    group_id: &str,
    partition: i32,
    producer_id: i64,
    epoch: i16,
    commits: Vec<(String, i32, Committed)>,
) -> i16 {
    let Some(part) = log_manager::get(OFFSETS_TOPIC, partition) else {
        return ec::NOT_COORDINATOR;
    };
    let keys: Vec<(Vec<u8>, Vec<u8>)> = commits
        .iter()
        .map(|(t, p, c)| (offset_key(group_id, t, *p), offset_value(c)))
        .collect();
    let recs: Vec<batch::KeyValue<'_>> = keys
        .iter()
        .map(|(k, v)| (Some(k.as_slice()), Some(v.as_slice())))
        .collect();
    let mut b = batch::build_keyed_batch(&recs, ringlet_engine::config::now_ms());
    ringlet_format::control::set_producer(
        &mut b,
        producer_id,
        epoch,
        -1,
        batch::ATTR_TRANSACTIONAL,
    );
    if let Err(code) = replicated_append(OFFSETS_TOPIC, &part, partition, Bytes::from(b)).await {
        return code;
    }
    GROUPS.with(|g| {
        let mut g = g.borrow_mut();
        let grp = g.entry(group_id.to_string()).or_insert_with(Group::new);
        let pending = grp.pending_txn.entry(producer_id).or_default();
        for (t, p, c) in commits {
            pending.insert((t, p), c);
        }
    });
    ec::NONE
}

/// A transaction marker reached offsets partition `partition` (on this shard): the producer's
/// pending offsets in that partition's groups take effect (commit) or go (abort).
pub fn complete_txn(partition: i32, offsets_partitions: i32, producer_id: i64, commit: bool) {
    settle_txn(
        |name| partition_for(name, offsets_partitions) == partition,
        producer_id,
        commit,
    );
}

fn settle_txn(of: impl Fn(&str) -> bool, producer_id: i64, commit: bool) {
    GROUPS.with(|g| {
        for (name, grp) in g.borrow_mut().iter_mut() {
            if !of(name) {
                continue;
            }
            if let Some(pending) = grp.pending_txn.remove(&producer_id) {
                tracing::debug!(group = %name, producer_id, commit, partitions = pending.len(), "transactional offsets settled");
                if commit {
                    grp.offsets.extend(pending);
                }
            }
        }
    });
}

/// Partitions of a group with offsets pending in an open transaction (OffsetFetch with
/// `require_stable` answers UNSTABLE_OFFSET_COMMIT for them).
pub fn pending_txn_partitions(group_id: &str) -> std::collections::BTreeSet<(String, i32)> {
    GROUPS.with(|g| {
        g.borrow()
            .get(group_id)
            .map(|grp| {
                grp.pending_txn
                    .values()
                    .flat_map(|m| m.keys().cloned())
                    .collect()
            })
            .unwrap_or_default()
    })
}

/// Committed offsets of a group (all, or the requested partitions).
pub fn fetch_offsets(group_id: &str) -> BTreeMap<(String, i32), Committed> {
    GROUPS.with(|g| {
        g.borrow()
            .get(group_id)
            .map(|grp| grp.offsets.clone())
            .unwrap_or_default()
    })
}
