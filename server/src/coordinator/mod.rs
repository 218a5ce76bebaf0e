//! The group coordinator (Kafka's classic consumer-group protocol) and durable committed offsets.
//!
//! Each group belongs to one partition of the internal `__consumer_offsets` topic (Java's
//! `abs(groupId.hashCode) % offsets.topic.num.partitions`, as Kafka places it), and so to the
//! shard that owns that partition: all of a group's state lives on that shard, and every group
//! request is forwarded there. Committed offsets are appended to that partition through the same
//! engine as any topic (acknowledged after the flush policy is satisfied) and replayed from it
//! when the shard starts, with KIP-848 groups' state ([`consumer_log`]). Classic groups'
//! membership is not persisted: after a restart such a group is Empty and its members rejoin
//! (they get UNKNOWN_MEMBER_ID and start over), keeping their committed offsets.
//!
//! The broker is agnostic of assignment strategies: it picks the protocol every member supports
//! (the leader's most preferred one) and hands out the leader's assignment.
//!
//! By role: [`group`] is the group state machine (members, generations, the join barrier),
//! [`membership`] the group APIs (JoinGroup, SyncGroup, Heartbeat, LeaveGroup, the session
//! timer), [`offsets`] the offsets log (its record codec, the loader, commits), [`admin`] what
//! DescribeGroups, ListGroups, DeleteGroups and the metrics see. This file holds which offsets
//! partitions this shard serves and where a group lives.

mod admin;
pub mod assignor;
pub mod consumer;
mod consumer_log;
mod group;
mod membership;
mod migration;
mod offsets;
mod records;
pub mod share;
mod share_peer;
pub mod share_state;

pub use admin::{
    delete_group, describe, describe_consumer, list_local, metrics_local, subscribed_topics,
    Described, GroupMetrics,
};
pub use group::{Committed, Group, GroupState, JoinResult, SyncResult};
pub use membership::{check_commit, heartbeat, join, leave, sync, tick_loop, JoinRequest};
pub(crate) use offsets::{append_acked, replicated_append};
pub use offsets::{
    commit, complete_txn, delete_offsets, fetch_offsets, load_local, pending_txn_partitions,
    persist_group, txn_commit,
};

use crate::broker::Broker;
use crate::error_code as ec;
use offsets::load_partition;
use ringlet_engine::log_manager;

use ringlet_engine::runtime;
use std::cell::RefCell;
use std::collections::HashMap;

pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

thread_local! {
    static GROUPS: RefCell<HashMap<String, Group>> = RefCell::new(HashMap::new());
    /// Offsets partitions (in a cluster) whose groups this shard serves: led here and loaded.
    /// `false` while loading.
    static SERVING: RefCell<HashMap<i32, bool>> = RefCell::new(HashMap::new());
}

/// In a cluster: whether this shard coordinates the groups of offsets partition `partition`
/// now; the error code otherwise (NOT_COORDINATOR, or COORDINATOR_LOAD_IN_PROGRESS).
pub fn serving(partition: i32) -> Result<(), i16> {
    SERVING.with(|s| match s.borrow().get(&partition) {
        Some(true) => Ok(()),
        Some(false) => Err(ec::COORDINATOR_LOAD_IN_PROGRESS),
        None => Err(ec::NOT_COORDINATOR),
    })
}

/// This broker became the leader of offsets partition `partition` (on its shard): replay its
/// log (to the log end: everything acknowledged is there) into group state, then serve.
fn take_over(broker: std::sync::Arc<Broker>, partition: i32) {
    let offsets_partitions = broker.config.offsets_topic_num_partitions;
    SERVING.with(|s| s.borrow_mut().insert(partition, false));
    runtime::spawn(async move {
        drop_groups_of(partition, offsets_partitions);
        let names = |id: [u8; 16]| broker.topic_name(id);
        let n = match log_manager::get(OFFSETS_TOPIC, partition) {
            Some(part) => load_partition(&part, true, &names).await,
            None => 0,
        };
        GROUPS.with(|g| g.borrow_mut().retain(|_, grp| grp.has_state()));
        SERVING.with(|s| {
            if let Some(v) = s.borrow_mut().get_mut(&partition) {
                *v = true;
            }
        });
        tracing::info!(
            partition,
            committed_offsets_loaded = n,
            "now coordinating the groups of this offsets partition"
        );
    })
    .detach();
}

/// Follows, on the current shard, leadership of the offsets partitions: load a partition's groups
/// when this broker becomes its leader, drop them when it stops being one.
pub fn follow_leadership(broker: std::sync::Arc<Broker>) {
    let offsets_partitions = broker.config.offsets_topic_num_partitions;
    crate::cluster::replica::on_leadership_change(move |topic, partition, change| {
        if topic != OFFSETS_TOPIC {
            return;
        }
        match change {
            crate::cluster::replica::Leadership::Gained => take_over(broker.clone(), partition),
            crate::cluster::replica::Leadership::Lost => resign(partition, offsets_partitions),
        }
    });
}

/// Leadership of offsets partition `partition` moved away: forget its groups.
fn resign(partition: i32, offsets_partitions: i32) {
    if SERVING
        .with(|s| s.borrow_mut().remove(&partition))
        .is_some()
    {
        drop_groups_of(partition, offsets_partitions);
        tracing::info!(
            partition,
            "no longer coordinating the groups of this offsets partition"
        );
    }
}

fn drop_groups_of(partition: i32, offsets_partitions: i32) {
    share_state::drop_partition(partition, offsets_partitions);
    GROUPS.with(|g| {
        g.borrow_mut()
            .retain(|name, _| partition_for(name, offsets_partitions) != partition)
    });
}

/// Configs of the offsets topic, Kafka's: compacted (only each group's latest commit per
/// partition stays; deleted groups and expired offsets leave tombstones, which the cleaner drops
/// after `delete.retention.ms`), never deleted by time, segments of `offsets.topic.segment.bytes`
/// (Kafka's 100 MiB default).
pub fn offsets_topic_configs() -> std::collections::BTreeMap<String, String> {
    [
        ("cleanup.policy", "compact"),
        ("segment.bytes", "104857600"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Kafka's placement: `abs(groupId.hashCode) % partitions`, with Java's String.hashCode.
pub fn partition_for(group: &str, partitions: i32) -> i32 {
    let mut h: i32 = 0;
    for c in group.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(i32::from(c));
    }
    // Kafka's Utils.abs maps i32::MIN to 0.
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % partitions.max(1)
}

/// The shard owning a group's offsets partition.
pub fn owner(broker: &Broker, group: &str) -> Option<(runtime::ShardId, i32)> {
    let p = partition_for(group, broker.config.offsets_topic_num_partitions);
    broker.owner(OFFSETS_TOPIC, p).map(|s| (s, p))
}
