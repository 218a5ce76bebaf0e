//! The follower side of replication: one fetcher task per shard and leader broker, truncating by
//! leader epoch where needed, then fetching every partition this shard follows from that leader.

use super::{key, Role, FETCHERS, ROLES};
use crate::cluster::peer::PeerConn;
use crate::cluster::Cluster;
use crate::error_code as ec;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, FetchResponse, OffsetForLeaderEpochRequest,
    OffsetForLeaderEpochResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use ringlet_engine::log_manager;
use ringlet_engine::runtime::{self, io};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

pub(super) fn ensure_fetcher(cluster: &Arc<Cluster>, leader: i32) {
    let fresh = FETCHERS.with(|f| f.borrow_mut().insert(leader));
    if fresh {
        let c = cluster.clone();
        runtime::spawn(async move {
            fetcher(c, leader).await;
            FETCHERS.with(|f| f.borrow_mut().remove(&leader));
        })
        .detach();
    }
}

struct Followed {
    topic: String,
    partition: i32,
    epoch: i32,
    truncate: bool,
    /// Backing off after a local write failure: neither truncated nor fetched this round.
    delayed: bool,
}

fn followed_from(leader: i32) -> Vec<Followed> {
    ROLES.with(|r| {
        r.borrow()
            .iter()
            .filter_map(|((t, p), role)| match role {
                Role::Follower(f) if f.leader == leader => Some(Followed {
                    topic: t.clone(),
                    partition: *p,
                    epoch: f.epoch,
                    truncate: f.needs_truncation,
                    delayed: f
                        .delayed_until
                        .is_some_and(|t| t > std::time::Instant::now()),
                }),
                _ => None,
            })
            .collect()
    })
}

fn still_following(topic: &str, partition: i32, leader: i32, epoch: i32) -> bool {
    ROLES.with(|r| {
        matches!(r.borrow().get(&key(topic, partition)),
            Some(Role::Follower(f)) if f.leader == leader && f.epoch == epoch)
    })
}

/// Backs a partition off after its local log refused a write (disk full, EIO): without it the
/// follower would fetch, fail, truncate and fetch again in a tight loop, moving the leader's data
/// over the network and logging each time, for as long as the disk stays full.
fn delay_partition(topic: &str, partition: i32, epoch: i32, backoff: Duration) {
    ROLES.with(|r| {
        if let Some(Role::Follower(f)) = r.borrow_mut().get_mut(&key(topic, partition)) {
            if f.epoch == epoch {
                f.delayed_until = Some(std::time::Instant::now() + backoff);
            }
        }
    });
}

fn set_needs_truncation(topic: &str, partition: i32, epoch: i32, v: bool) {
    ROLES.with(|r| {
        if let Some(Role::Follower(f)) = r.borrow_mut().get_mut(&key(topic, partition)) {
            if f.epoch == epoch {
                f.needs_truncation = v;
            }
        }
    });
}

/// The follower side: fetches every partition this shard follows from `leader`, until none is
/// left.
async fn fetcher(cluster: Arc<Cluster>, leader: i32) {
    let cfg = cluster.config.clone();
    let me = cluster.broker_id;
    let backoff = Duration::from_millis(cfg.replica_fetch_backoff_ms.max(10));
    let socket_timeout = Duration::from_millis(
        cfg.replica_socket_timeout_ms
            .max(cfg.replica_fetch_wait_max_ms + 1000),
    );
    let client_id = format!("ringlet-replica-{me}-shard-{}", runtime::shard_id());
    let mut conn: Option<PeerConn> = None;
    let mut refused: Option<String> = None;
    tracing::info!(leader, "replica fetcher started");
    loop {
        if cluster.is_stopping() {
            return;
        }
        let parts = followed_from(leader);
        if parts.is_empty() {
            tracing::info!(leader, "replica fetcher stopped (nothing left to follow)");
            return;
        }
        let Some((addr, host)) = cluster.peer_endpoint(leader) else {
            io::sleep(backoff).await;
            continue;
        };
        if conn.as_ref().is_some_and(|c| c.addr != addr) {
            conn = None;
        }
        if conn.is_none() {
            let security = &cluster.peer_security;
            match PeerConn::connect(addr, &host, security, socket_timeout, &client_id).await {
                Ok(c) => {
                    refused = None;
                    conn = Some(c);
                }
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                    // TLS or SASL refused: a misconfiguration to tell the operator (once per
                    // distinct error, not at every retry).
                    let msg = e.to_string();
                    if refused.as_ref() != Some(&msg) {
                        tracing::warn!(leader, %addr, error = %msg, "cannot connect to the leader securely (inter-broker TLS/SASL)");
                        refused = Some(msg);
                    }
                    io::sleep(backoff).await;
                    continue;
                }
                Err(e) => {
                    tracing::debug!(leader, %addr, error = %e, "cannot reach the leader");
                    io::sleep(backoff).await;
                    continue;
                }
            }
        }
        let c = conn.as_mut().expect("connected");
        let outcome = fetch_round(&cluster, c, leader, me, parts, socket_timeout).await;
        match outcome {
            Ok(true) => {}
            Ok(false) => io::sleep(Duration::from_millis(50).min(backoff)).await,
            Err(e) => {
                tracing::debug!(leader, error = %e, "replica fetch failed");
                conn = None;
                io::sleep(backoff).await;
            }
        }
    }
}

/// Where a follower truncates after asking its leader for the end of its latest epoch (KIP-101,
/// KIP-279): `leader` is the leader's answer `(epoch, end offset)` (the largest epoch it has at
/// or below ours, and where that epoch ends in its log), `mine` where that same epoch ends in our
/// log (-1: it is our latest). The follower keeps everything up to the smaller of the two; never
/// truncating to its high watermark, which may lag what was committed. Only when the leader knows
/// none of our epochs does it fall back to the high watermark.
pub fn truncation_target(leader: (i32, i64), mine: i64, leo: i64, hw: i64) -> i64 {
    let (epoch, end) = leader;
    if epoch < 0 || end < 0 {
        return hw.min(leo);
    }
    let mine = if mine < 0 { leo } else { mine };
    end.min(mine).min(leo)
}

/// One round: truncation where needed, then one fetch. `Ok(false)` asks for a short pause (the
/// leader refused every partition, e.g. it does not know its new epoch yet).
async fn fetch_round(
    cluster: &Cluster,
    conn: &mut PeerConn,
    leader: i32,
    me: i32,
    parts: Vec<Followed>,
    timeout: Duration,
) -> std::io::Result<bool> {
    let backoff = Duration::from_millis(cluster.config.replica_fetch_backoff_ms.max(10));
    let to_truncate: Vec<&Followed> = parts.iter().filter(|p| p.truncate && !p.delayed).collect();
    if !to_truncate.is_empty() {
        let refused = truncate_by_epoch(conn, leader, me, &to_truncate, timeout, backoff).await?;
        if refused == to_truncate.len() {
            return Ok(false);
        }
    }
    let parts: Vec<Followed> = followed_from(leader)
        .into_iter()
        .filter(|p| !p.truncate && !p.delayed)
        .collect();
    if parts.is_empty() {
        return Ok(false);
    }
    fetch_once(cluster, conn, leader, me, &parts, timeout).await
}

/// Asks the leader where each partition's latest epoch ends (OffsetForLeaderEpoch) and truncates
/// to it. Returns how many partitions the leader refused.
async fn truncate_by_epoch(
    conn: &mut PeerConn,
    leader: i32,
    me: i32,
    to_truncate: &[&Followed],
    timeout: Duration,
    backoff: Duration,
) -> std::io::Result<usize> {
    let mut topics: HashMap<&str, Vec<OffsetForLeaderPartition>> = HashMap::new();
    for p in to_truncate {
        let Some(part) = log_manager::get(&p.topic, p.partition) else {
            continue;
        };
        let latest = part.latest_epoch();
        topics.entry(&p.topic).or_default().push(
            OffsetForLeaderPartition::default()
                .with_partition(p.partition)
                .with_current_leader_epoch(p.epoch)
                .with_leader_epoch(latest),
        );
    }
    let req = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(me))
        .with_topics(
            topics
                .into_iter()
                .map(|(t, ps)| {
                    OffsetForLeaderTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(t.to_string())))
                        .with_partitions(ps)
                })
                .collect(),
        );
    let resp: OffsetForLeaderEpochResponse = conn
        .call(ApiKey::OffsetForLeaderEpoch, 3, &req, timeout)
        .await?;
    let mut refused = 0;
    for t in resp.topics {
        for r in t.partitions {
            let Some(p) = to_truncate
                .iter()
                .find(|p| p.topic == t.topic.0.as_str() && p.partition == r.partition)
            else {
                continue;
            };
            if r.error_code != ec::NONE {
                refused += 1;
                tracing::debug!(
                    topic = p.topic,
                    partition = p.partition,
                    error = ec::name(r.error_code),
                    "OffsetForLeaderEpoch refused"
                );
                continue;
            }
            if !still_following(&p.topic, p.partition, leader, p.epoch) {
                continue;
            }
            if truncate_one(p, leader, (r.leader_epoch, r.end_offset)).await {
                set_needs_truncation(&p.topic, p.partition, p.epoch, false);
            } else {
                delay_partition(&p.topic, p.partition, p.epoch, backoff);
            }
        }
    }
    Ok(refused)
}

/// Truncates one followed partition after the leader's answer `(epoch, end offset)`; false when
/// the truncation failed (it is tried again next round).
async fn truncate_one(p: &Followed, leader: i32, answer: (i32, i64)) -> bool {
    let Some(part) = log_manager::get(&p.topic, p.partition) else {
        return false;
    };
    let mine = part.end_offset_for_epoch(answer.0).1;
    let o = part.offsets();
    let target = truncation_target(answer, mine, o.log_end, o.high_watermark);
    let before = o.log_end;
    if target < before {
        tracing::warn!(
            topic = p.topic,
            partition = p.partition,
            from = before,
            to = target,
            leader,
            leader_epoch = answer.0,
            "truncating to the leader's log (divergent or uncommitted suffix)"
        );
        if let Err(e) = part.truncate_to(target).await {
            tracing::error!(topic = p.topic, partition = p.partition, error = %e, "truncation failed");
            return false;
        }
    }
    true
}

/// One Fetch (v12, as a replica) of every partition in `parts`; appends what came back. Returns
/// whether any partition was answered without error.
async fn fetch_once(
    cluster: &Cluster,
    conn: &mut PeerConn,
    leader: i32,
    me: i32,
    parts: &[Followed],
    timeout: Duration,
) -> std::io::Result<bool> {
    let cfg = &cluster.config;
    let backoff = Duration::from_millis(cfg.replica_fetch_backoff_ms.max(10));
    let throttled = follower_throttled(cluster, parts);
    let exceeded = !throttled.is_empty() && cluster.throttles.follower.exceeded();
    let mut topics: HashMap<&str, Vec<FetchPartition>> = HashMap::new();
    for p in parts {
        if exceeded && throttled.contains(&(p.topic.as_str(), p.partition)) {
            continue;
        }
        let Some(part) = log_manager::get(&p.topic, p.partition) else {
            continue;
        };
        let o = part.offsets();
        topics.entry(&p.topic).or_default().push(
            FetchPartition::default()
                .with_partition(p.partition)
                .with_current_leader_epoch(p.epoch)
                .with_fetch_offset(o.log_end)
                .with_last_fetched_epoch(part.latest_epoch())
                .with_log_start_offset(o.log_start)
                .with_partition_max_bytes(cfg.replica_fetch_max_bytes),
        );
    }
    if topics.is_empty() {
        // Everything here is throttled for now.
        return Ok(false);
    }
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(me))
        .with_max_wait_ms(cfg.replica_fetch_wait_max_ms as i32)
        .with_min_bytes(cfg.replica_fetch_min_bytes)
        .with_max_bytes(i32::MAX)
        .with_session_epoch(-1)
        .with_topics(
            topics
                .into_iter()
                .map(|(t, ps)| {
                    FetchTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(t.to_string())))
                        .with_partitions(ps)
                })
                .collect(),
        );
    let resp: FetchResponse = conn.call(ApiKey::Fetch, 12, &req, timeout).await?;
    let mut progressed = false;
    for t in resp.responses {
        for r in t.partitions {
            let Some(p) = parts
                .iter()
                .find(|p| p.topic == t.topic.0.as_str() && p.partition == r.partition_index)
            else {
                continue;
            };
            if still_following(&p.topic, p.partition, leader, p.epoch) {
                if throttled.contains(&(p.topic.as_str(), p.partition)) {
                    let bytes = r.records.as_ref().map_or(0, |b| b.len());
                    cluster.throttles.follower.record(bytes);
                }
                progressed |= apply_fetched(p, r, backoff).await;
            }
        }
    }
    Ok(progressed)
}

/// The partitions of `parts` the follower throttle covers: a rate is set, the topic's
/// `follower.replication.throttled.replicas` names the partition on this broker, and this broker
/// is not in its ISR.
fn follower_throttled<'a>(cluster: &Cluster, parts: &'a [Followed]) -> Vec<(&'a str, i32)> {
    if !cluster.throttles.follower.limited() {
        return Vec::new();
    }
    let view = cluster.view();
    let me = cluster.broker_id;
    parts
        .iter()
        .filter(|p| {
            view.topics.get(&p.topic).is_some_and(|t| {
                crate::cluster::throttle::names(
                    &t.configs,
                    crate::cluster::throttle::FOLLOWER_REPLICAS,
                    p.partition,
                    me,
                )
            }) && view
                .state(&p.topic, p.partition)
                .is_none_or(|s| !s.isr.contains(&me))
        })
        .map(|p| (p.topic.as_str(), p.partition))
        .collect()
}

/// Appends one partition's fetched batches and follows the leader's high watermark; an error
/// sends the partition back to truncation. Returns whether the leader answered it.
async fn apply_fetched(
    p: &Followed,
    r: kafka_protocol::messages::fetch_response::PartitionData,
    backoff: Duration,
) -> bool {
    let Some(part) = log_manager::get(&p.topic, p.partition) else {
        return false;
    };
    match r.error_code {
        ec::NONE => {
            if let Some(records) = r.records.filter(|b| !b.is_empty()) {
                if let Err(e) = part.append_replica(records).await {
                    tracing::warn!(topic = p.topic, partition = p.partition, error = %e, backoff_ms = backoff.as_millis() as u64, "replicated append failed; truncating by epoch again after replica.fetch.backoff.ms");
                    set_needs_truncation(&p.topic, p.partition, p.epoch, true);
                    delay_partition(&p.topic, p.partition, p.epoch, backoff);
                    return true;
                }
            }
            let leo = part.log_end_offset();
            part.set_high_watermark(r.high_watermark.min(leo));
            if r.log_start_offset > part.log_start_offset() {
                if let Err(e) = part.follow_log_start(r.log_start_offset) {
                    tracing::warn!(topic = p.topic, partition = p.partition, error = %e, "cannot follow the leader's log start");
                }
            }
            true
        }
        ec::OFFSET_OUT_OF_RANGE if r.log_start_offset > part.log_end_offset() => {
            // The leader's log starts past our end (DeleteRecords or retention there while we
            // were away): nothing we hold can be continued; start again at its log start.
            tracing::warn!(
                topic = p.topic,
                partition = p.partition,
                leader_log_start = r.log_start_offset,
                log_end = part.log_end_offset(),
                "behind the leader's log start; emptying the replica and fetching from there"
            );
            if let Err(e) = part.reset_to(r.log_start_offset).await {
                tracing::error!(topic = p.topic, partition = p.partition, error = %e, "resetting the replica failed");
            }
            false
        }
        ec::OFFSET_OUT_OF_RANGE => {
            tracing::warn!(
                topic = p.topic,
                partition = p.partition,
                "fetch offset out of range at the leader; truncating by epoch again"
            );
            set_needs_truncation(&p.topic, p.partition, p.epoch, true);
            false
        }
        code => {
            tracing::debug!(
                topic = p.topic,
                partition = p.partition,
                error = ec::name(code),
                "leader refused the fetch"
            );
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::truncation_target;

    #[test]
    fn a_follower_keeps_committed_data_its_high_watermark_had_not_caught_up_with() {
        // KIP-101's lost write: the follower has offsets 0..2 (epoch 0) but its high watermark is
        // still 1 when the leader dies; the new leader (epoch 1) has both too and answers (0, 2).
        // Truncating to the high watermark would drop the acknowledged offset 1.
        assert_eq!(truncation_target((0, 2), -1, 2, 1), 2);
    }

    #[test]
    fn a_divergent_suffix_goes_and_nothing_more() {
        // Our epoch 0 runs to 5; the leader's epoch 0 ended at 3 (its epoch 1 began there).
        assert_eq!(truncation_target((0, 3), -1, 5, 2), 3);
        // KIP-279: the leader answers an older epoch (1) than ours (2); ours ends epoch 1 at 4,
        // its at 6: keep up to 4 (our epoch 2 data from 4 on is not the leader's).
        assert_eq!(truncation_target((1, 6), 4, 7, 3), 4);
        // Nothing to cut when the leader has more.
        assert_eq!(truncation_target((3, 100), -1, 50, 40), 50);
        // The leader knows none of our epochs: only what is committed stays.
        assert_eq!(truncation_target((-1, -1), -1, 9, 6), 6);
    }
}
