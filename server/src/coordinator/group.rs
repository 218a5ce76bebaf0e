//! The state machine of one classic group: members, generations, the join barrier.

use crate::error_code as ec;
use bytes::Bytes;
use futures_channel::oneshot;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

impl GroupState {
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
        }
    }
}

/// What a JoinGroup gets back.
#[derive(Clone, Debug, Default)]
pub struct JoinResult {
    pub error_code: i16,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// For the leader: every member's id, instance id and metadata for the chosen protocol.
    pub members: Vec<(String, Option<String>, Bytes)>,
}

#[derive(Clone, Debug, Default)]
pub struct SyncResult {
    pub error_code: i16,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

pub(super) struct Member {
    pub(super) instance_id: Option<String>,
    pub(super) client_id: String,
    pub(super) client_host: String,
    pub(super) session_timeout: Duration,
    pub(super) rebalance_timeout: Duration,
    pub(super) protocols: Vec<(String, Bytes)>,
    pub(super) assignment: Bytes,
    pub(super) last_heartbeat: Instant,
    pub(super) join_waiter: Option<oneshot::Sender<JoinResult>>,
    pub(super) sync_waiter: Option<oneshot::Sender<SyncResult>>,
}

impl Member {
    /// This member's subscription metadata for `protocol` (empty if it does not speak it).
    pub(super) fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(p, _)| p == protocol)
            .map(|(_, b)| b.clone())
            .unwrap_or_default()
    }
}

/// A committed offset.
#[derive(Clone, Debug)]
pub struct Committed {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_ms: i64,
}

pub struct Group {
    pub state: GroupState,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: Option<String>,
    pub(super) members: BTreeMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, not yet joined.
    /// (handed out at, the session timeout the member asked for): it must rejoin within it.
    pub(super) pending: HashMap<String, (Instant, Duration)>,
    pub(super) rebalance_deadline: Option<Instant>,
    /// The first rebalance of an empty group waits this long for more members.
    pub(super) initial_delay_until: Option<Instant>,
    pub offsets: BTreeMap<(String, i32), Committed>,
    /// Offsets committed inside a transaction (TxnOffsetCommit), per producer id: they take
    /// effect when the commit marker reaches the group's offsets partition, and go on abort.
    pub pending_txn: HashMap<i64, BTreeMap<(String, i32), Committed>>,
    /// Set for a KIP-848 consumer group (members joined by ConsumerGroupHeartbeat); the
    /// classic fields above then stay empty.
    pub consumer: Option<super::consumer::ConsumerGroup>,
    /// The consumer-group records written for this group (key, digest of the value), so that
    /// only changes are appended and gone keys get tombstones (`consumer_log`).
    pub(super) written: BTreeMap<Vec<u8>, u64>,
}

impl Group {
    pub(super) fn new() -> Group {
        Group {
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: BTreeMap::new(),
            pending: HashMap::new(),
            rebalance_deadline: None,
            initial_delay_until: None,
            offsets: BTreeMap::new(),
            pending_txn: HashMap::new(),
            consumer: None,
            written: BTreeMap::new(),
        }
    }

    /// Whether anything of the group outlives a reload: offsets, members, open transactions'
    /// offsets, or KIP-848 state.
    pub(super) fn has_state(&self) -> bool {
        !self.offsets.is_empty()
            || !self.members.is_empty()
            || !self.pending_txn.is_empty()
            || self.consumer.is_some()
    }

    pub(super) fn prepare_rebalance(&mut self, initial_delay: Duration) {
        if self.state == GroupState::PreparingRebalance {
            return;
        }
        // Anyone parked in SyncGroup learns that the generation is over.
        for m in self.members.values_mut() {
            if let Some(w) = m.sync_waiter.take() {
                let _ = w.send(SyncResult {
                    error_code: ec::REBALANCE_IN_PROGRESS,
                    ..SyncResult::default()
                });
            }
        }
        let timeout = self
            .members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or(Duration::from_secs(60));
        let now = Instant::now();
        self.rebalance_deadline = Some(now + timeout);
        self.initial_delay_until = (self.state == GroupState::Empty && !initial_delay.is_zero())
            .then(|| now + initial_delay);
        self.state = GroupState::PreparingRebalance;
    }

    /// Completes the join phase when every member has rejoined (or the deadline passed).
    pub(super) fn maybe_complete_join(&mut self, now: Instant) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        let all_joined = !self.members.is_empty()
            && self.members.values().all(|m| m.join_waiter.is_some())
            && self.pending.is_empty();
        let deadline_passed = self.rebalance_deadline.is_some_and(|d| now >= d);
        let delaying = self.initial_delay_until.is_some_and(|d| now < d);
        if !(deadline_passed || (all_joined && !delaying)) {
            return;
        }
        // Members that did not rejoin in time are out.
        self.members.retain(|_, m| m.join_waiter.is_some());
        self.pending.clear();
        self.generation += 1;
        self.rebalance_deadline = None;
        self.initial_delay_until = None;
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.leader = None;
            self.protocol_name = None;
            return;
        }
        if !self
            .leader
            .as_ref()
            .is_some_and(|l| self.members.contains_key(l))
        {
            self.leader = self.members.keys().next().cloned();
        }
        let leader = self.leader.clone().expect("a member leads");
        // The leader's most preferred protocol that every member supports.
        let chosen = self.members[&leader]
            .protocols
            .iter()
            .map(|(n, _)| n.clone())
            .find(|name| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(p, _)| p == name))
            });
        self.protocol_name = chosen.clone();
        let Some(chosen) = chosen else {
            for (_, m) in self.members.iter_mut() {
                if let Some(w) = m.join_waiter.take() {
                    let _ = w.send(JoinResult {
                        error_code: ec::INCONSISTENT_GROUP_PROTOCOL,
                        ..JoinResult::default()
                    });
                }
            }
            self.members.clear();
            self.state = GroupState::Empty;
            return;
        };
        let roster: Vec<(String, Option<String>, Bytes)> = self
            .members
            .iter()
            .map(|(id, m)| {
                let meta = m.metadata_for(&chosen);
                (id.clone(), m.instance_id.clone(), meta)
            })
            .collect();
        self.state = GroupState::CompletingRebalance;
        for (id, m) in self.members.iter_mut() {
            m.assignment = Bytes::new();
            m.last_heartbeat = now;
            if let Some(w) = m.join_waiter.take() {
                let _ = w.send(JoinResult {
                    error_code: ec::NONE,
                    generation_id: self.generation,
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: Some(chosen.clone()),
                    leader: leader.clone(),
                    member_id: id.clone(),
                    members: if *id == leader {
                        roster.clone()
                    } else {
                        Vec::new()
                    },
                });
            }
        }
    }

    pub(super) fn remove_member(&mut self, id: &str, initial_delay: Duration) {
        if let Some(mut m) = self.members.remove(id) {
            if let Some(w) = m.join_waiter.take() {
                let _ = w.send(JoinResult {
                    error_code: ec::UNKNOWN_MEMBER_ID,
                    ..JoinResult::default()
                });
            }
            if let Some(w) = m.sync_waiter.take() {
                let _ = w.send(SyncResult {
                    error_code: ec::UNKNOWN_MEMBER_ID,
                    ..SyncResult::default()
                });
            }
        }
        match self.state {
            GroupState::Empty => {}
            _ if self.members.is_empty() && self.state != GroupState::PreparingRebalance => {
                self.state = GroupState::Empty;
                self.generation += 1;
                self.leader = None;
            }
            GroupState::PreparingRebalance => self.maybe_complete_join(Instant::now()),
            _ => self.prepare_rebalance(initial_delay),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(protocols: &[&str]) -> (Member, oneshot::Receiver<JoinResult>) {
        let (tx, rx) = oneshot::channel();
        let m = Member {
            instance_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(30),
            protocols: protocols
                .iter()
                .map(|p| (p.to_string(), Bytes::from(format!("meta-{p}"))))
                .collect(),
            assignment: Bytes::new(),
            last_heartbeat: Instant::now(),
            join_waiter: Some(tx),
            sync_waiter: None,
        };
        (m, rx)
    }

    #[test]
    fn a_join_completes_when_every_member_rejoined_with_a_common_protocol() {
        let mut g = Group::new();
        g.prepare_rebalance(Duration::ZERO);
        assert_eq!(g.state, GroupState::PreparingRebalance);
        let (a, mut ra) = member(&["range", "roundrobin"]);
        let (b, mut rb) = member(&["roundrobin"]);
        g.members.insert("a".into(), a);
        g.members.insert("b".into(), b);
        g.maybe_complete_join(Instant::now());
        assert_eq!(g.state, GroupState::CompletingRebalance);
        assert_eq!(g.generation, 1);
        let ja = ra.try_recv().unwrap().unwrap();
        let jb = rb.try_recv().unwrap().unwrap();
        assert_eq!(ja.error_code, ec::NONE);
        assert_eq!(ja.protocol_name.as_deref(), Some("roundrobin"));
        assert_eq!(ja.leader, "a");
        // Only the leader sees the roster, with each member's metadata for the chosen protocol.
        assert_eq!(ja.members.len(), 2);
        assert_eq!(ja.members[1].2, Bytes::from("meta-roundrobin"));
        assert!(jb.members.is_empty());
    }

    #[test]
    fn no_common_protocol_fails_every_member_and_empties_the_group() {
        let mut g = Group::new();
        g.prepare_rebalance(Duration::ZERO);
        let (a, mut ra) = member(&["range"]);
        let (b, mut rb) = member(&["sticky"]);
        g.members.insert("a".into(), a);
        g.members.insert("b".into(), b);
        g.maybe_complete_join(Instant::now());
        assert_eq!(g.state, GroupState::Empty);
        for r in [&mut ra, &mut rb] {
            let j = r.try_recv().unwrap().unwrap();
            assert_eq!(j.error_code, ec::INCONSISTENT_GROUP_PROTOCOL);
        }
    }

    #[test]
    fn the_initial_delay_holds_the_first_join_and_the_deadline_drops_laggards() {
        let mut g = Group::new();
        g.prepare_rebalance(Duration::from_secs(3));
        let (a, _ra) = member(&["range"]);
        g.members.insert("a".into(), a);
        let now = Instant::now();
        g.maybe_complete_join(now);
        assert_eq!(g.state, GroupState::PreparingRebalance, "still delaying");
        g.maybe_complete_join(now + Duration::from_secs(4));
        assert_eq!(g.state, GroupState::CompletingRebalance);
        // A new rebalance where one member never rejoins: past the deadline it is removed.
        let (mut b, _rb) = member(&["range"]);
        b.join_waiter = None;
        g.members.insert("b".into(), b);
        g.prepare_rebalance(Duration::ZERO);
        let (tx, _rx) = oneshot::channel();
        g.members.get_mut("a").unwrap().join_waiter = Some(tx);
        g.maybe_complete_join(Instant::now() + Duration::from_secs(31));
        assert_eq!(g.generation, 2);
        assert!(g.members.contains_key("a") && !g.members.contains_key("b"));
    }

    #[test]
    fn removing_the_last_member_of_a_stable_group_empties_it() {
        let mut g = Group::new();
        g.prepare_rebalance(Duration::ZERO);
        let (a, _ra) = member(&["range"]);
        g.members.insert("a".into(), a);
        g.maybe_complete_join(Instant::now());
        g.state = GroupState::Stable;
        g.remove_member("a", Duration::ZERO);
        assert_eq!(g.state, GroupState::Empty);
        assert_eq!(g.generation, 2);
        assert!(g.leader.is_none());
    }
}
