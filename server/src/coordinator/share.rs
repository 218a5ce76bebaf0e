//! KIP-932 share groups on the group coordinator: members join, heartbeat and leave with
//! ShareGroupHeartbeat, and the coordinator assigns each member partitions of the topics it
//! subscribes to. Unlike a consumer group a share partition may be assigned to several members
//! at once (records, not partitions, are what members hold), so an assignment takes effect at
//! once: no revocation round, the member epoch is the group epoch.
//!
//! The assignor is Kafka's `simple` in spirit: per topic, partitions are dealt round-robin to
//! the members subscribed to it; when members outnumber partitions, each member gets one
//! partition and partitions are shared. Membership lives in memory on the coordinator's shard
//! (as the consumer groups' does): a coordinator move makes members join again.

use super::GROUPS;
use crate::error_code as ec;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

pub type Parts = BTreeMap<String, BTreeSet<i32>>;

#[derive(Clone, Debug)]
pub struct ShareMember {
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub topics: Vec<String>,
    /// The epoch last sent to the member (it catches up with the group's at its heartbeat).
    pub epoch: i32,
    /// The member's partitions at the group epoch.
    pub assigned: Parts,
    /// The assignment last sent to the member.
    sent: Option<Parts>,
    last_heartbeat: Instant,
}

#[derive(Clone, Debug, Default)]
pub struct ShareGroup {
    pub epoch: i32,
    pub members: BTreeMap<String, ShareMember>,
    /// The partition counts the assignment was computed for.
    layout: BTreeMap<String, i32>,
}

impl ShareGroup {
    pub fn state(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else {
            "Stable"
        }
    }

    /// Every topic some member subscribes to.
    pub fn subscribed(&self) -> BTreeSet<String> {
        self.members
            .values()
            .flat_map(|m| m.topics.iter().cloned())
            .collect()
    }
}

thread_local! {
    static SHARE_GROUPS: RefCell<HashMap<String, ShareGroup>> = RefCell::new(HashMap::new());
}

/// One ShareGroupHeartbeat, decoded.
pub struct Heartbeat {
    pub member_id: String,
    pub member_epoch: i32,
    pub rack_id: Option<String>,
    pub topics: Option<Vec<String>>,
    pub client_id: String,
    pub client_host: String,
}

#[derive(Debug, Default)]
pub struct Answer {
    pub error: i16,
    pub message: Option<String>,
    pub member_id: String,
    pub epoch: i32,
    /// Sent when the member's assignment is new to it.
    pub assignment: Option<Parts>,
}

pub struct Settings {
    pub session_timeout: Duration,
    pub max_size: usize,
}

fn refuse(error: i16, message: String) -> Answer {
    Answer {
        error,
        message: Some(message),
        ..Default::default()
    }
}

/// Serves one heartbeat on the group's shard. `partitions`: each topic's partition count.
pub fn heartbeat(
    group_id: &str,
    hb: Heartbeat,
    partitions: &BTreeMap<String, i32>,
    settings: &Settings,
) -> Answer {
    let now = Instant::now();
    // A group id names one kind of group: a classic or consumer group with members keeps it.
    let taken = GROUPS.with(|g| {
        g.borrow().get(group_id).is_some_and(|grp| {
            !grp.members.is_empty() || grp.consumer.as_ref().is_some_and(|c| !c.members.is_empty())
        })
    });
    if taken {
        return refuse(
            ec::GROUP_ID_NOT_FOUND,
            format!("Group {group_id} is not a share group."),
        );
    }
    SHARE_GROUPS.with(|g| {
        let mut g = g.borrow_mut();
        if hb.member_epoch == -1 {
            let Some(grp) = g.get_mut(group_id) else {
                return refuse(ec::GROUP_ID_NOT_FOUND, format!("Group {group_id} not found."));
            };
            if grp.members.remove(&hb.member_id).is_some() {
                tracing::info!(group = %group_id, member = %hb.member_id, "share group member left");
                grp.epoch += 1;
                rebalance(grp, partitions);
            }
            return Answer {
                member_id: hb.member_id,
                epoch: -1,
                ..Default::default()
            };
        }
        if hb.member_epoch != 0 && g.get(group_id).is_none() {
            // Not known here (membership is not persisted): the member joins again.
            return refuse(
                ec::UNKNOWN_MEMBER_ID,
                format!("member {} is not in group {group_id}", hb.member_id),
            );
        }
        let grp = g.entry(group_id.to_string()).or_default();
        serve(grp, group_id, hb, partitions, settings, now)
    })
}

fn serve(
    grp: &mut ShareGroup,
    group_id: &str,
    hb: Heartbeat,
    partitions: &BTreeMap<String, i32>,
    settings: &Settings,
    now: Instant,
) -> Answer {
    let mut changed = false;
    match grp.members.get(&hb.member_id) {
        None if hb.member_epoch != 0 => {
            return refuse(
                ec::UNKNOWN_MEMBER_ID,
                format!("member {} is not in group {group_id}", hb.member_id),
            )
        }
        None => {
            if grp.members.len() >= settings.max_size {
                return refuse(
                    ec::GROUP_MAX_SIZE_REACHED,
                    format!("share group {group_id} has reached its maximum size"),
                );
            }
            tracing::info!(group = %group_id, member = %hb.member_id, "share group member joined");
            grp.members.insert(
                hb.member_id.clone(),
                ShareMember {
                    rack_id: hb.rack_id.clone(),
                    client_id: hb.client_id.clone(),
                    client_host: hb.client_host.clone(),
                    topics: Vec::new(),
                    epoch: 0,
                    assigned: Parts::new(),
                    sent: None,
                    last_heartbeat: now,
                },
            );
            changed = true;
        }
        Some(m) if hb.member_epoch != 0 && hb.member_epoch != m.epoch => {
            return refuse(
                ec::FENCED_MEMBER_EPOCH,
                format!(
                    "member {} sent epoch {}, its epoch is {}",
                    hb.member_id, hb.member_epoch, m.epoch
                ),
            )
        }
        Some(_) => {}
    }
    let m = grp.members.get_mut(&hb.member_id).expect("member");
    m.last_heartbeat = now;
    if hb.member_epoch == 0 {
        // A rejoin: the assignment is sent again.
        m.sent = None;
    }
    if let Some(mut topics) = hb.topics {
        topics.sort();
        topics.dedup();
        if topics != m.topics {
            m.topics = topics;
            changed = true;
        }
    }
    if hb.rack_id.is_some() {
        m.rack_id = hb.rack_id;
    }
    // New partitions in a subscribed topic are assigned too.
    let subscribed = grp.subscribed();
    let layout: BTreeMap<String, i32> = partitions
        .iter()
        .filter(|(t, _)| subscribed.contains(*t))
        .map(|(t, n)| (t.clone(), *n))
        .collect();
    if changed || layout != grp.layout {
        grp.epoch += 1;
        rebalance(grp, partitions);
    }
    let epoch = grp.epoch;
    let m = grp.members.get_mut(&hb.member_id).expect("member");
    m.epoch = epoch;
    let assignment = (m.sent.as_ref() != Some(&m.assigned)).then(|| m.assigned.clone());
    if assignment.is_some() {
        m.sent = assignment.clone();
    }
    Answer {
        error: ec::NONE,
        message: None,
        member_id: hb.member_id,
        epoch,
        assignment,
    }
}

/// Recomputes every member's assignment at the group epoch.
fn rebalance(grp: &mut ShareGroup, partitions: &BTreeMap<String, i32>) {
    let subscribed = grp.subscribed();
    grp.layout = partitions
        .iter()
        .filter(|(t, _)| subscribed.contains(*t))
        .map(|(t, n)| (t.clone(), *n))
        .collect();
    let mut next: BTreeMap<String, Parts> = grp
        .members
        .keys()
        .map(|id| (id.clone(), Parts::new()))
        .collect();
    for (topic, &n) in &grp.layout {
        let members: Vec<&String> = grp
            .members
            .iter()
            .filter(|(_, m)| m.topics.contains(topic))
            .map(|(id, _)| id)
            .collect();
        let count = members.len();
        if count == 0 || n <= 0 {
            continue;
        }
        if count as i32 <= n {
            for p in 0..n {
                let id = members[p as usize % count];
                next.get_mut(id)
                    .expect("member")
                    .entry(topic.clone())
                    .or_default()
                    .insert(p);
            }
        } else {
            for (i, id) in members.iter().enumerate() {
                let p = i as i32 % n;
                next.get_mut(*id)
                    .expect("member")
                    .entry(topic.clone())
                    .or_default()
                    .insert(p);
            }
        }
    }
    for (id, m) in grp.members.iter_mut() {
        m.assigned = next.remove(id).unwrap_or_default();
    }
}

/// The session timer: members silent past the session timeout leave the group.
pub(super) fn expire(
    session: Duration,
    now: Instant,
    partitions: impl Fn() -> BTreeMap<String, i32>,
) {
    SHARE_GROUPS.with(|g| {
        for (name, grp) in g.borrow_mut().iter_mut() {
            let gone: Vec<String> = grp
                .members
                .iter()
                .filter(|(_, m)| now.duration_since(m.last_heartbeat) > session)
                .map(|(id, _)| id.clone())
                .collect();
            if gone.is_empty() {
                continue;
            }
            for id in &gone {
                tracing::info!(group = %name, member = %id, "share group member removed (session timeout)");
                grp.members.remove(id);
            }
            grp.epoch += 1;
            rebalance(grp, &partitions());
        }
    });
}

/// Whether a share group of this name has members (then no other kind of group may use it).
pub fn has_members(group_id: &str) -> bool {
    SHARE_GROUPS.with(|g| {
        g.borrow()
            .get(group_id)
            .is_some_and(|grp| !grp.members.is_empty())
    })
}

/// Creates an empty share group named `group_id` unless it exists: AlterShareGroupOffsets on
/// a new group id creates the group (Kafka 4.2). `false` when a classic or consumer group has
/// the id.
pub fn create_empty(group_id: &str) -> bool {
    let taken = GROUPS.with(|g| {
        g.borrow()
            .get(group_id)
            .is_some_and(|grp| !grp.members.is_empty() || grp.consumer.is_some())
    });
    if taken {
        return false;
    }
    SHARE_GROUPS.with(|g| {
        g.borrow_mut().entry(group_id.to_string()).or_default();
    });
    true
}

/// ShareGroupDescribe on the group's shard; `Err(GROUP_ID_NOT_FOUND)` for no share group.
pub fn describe<T>(group_id: &str, f: impl FnOnce(&ShareGroup) -> T) -> Result<T, i16> {
    SHARE_GROUPS.with(|g| match g.borrow().get(group_id) {
        Some(grp) => Ok(f(grp)),
        None => Err(ec::GROUP_ID_NOT_FOUND),
    })
}

/// ListGroups: (name, state) of the share groups on this shard.
pub fn list_local() -> Vec<(String, &'static str)> {
    SHARE_GROUPS.with(|g| {
        g.borrow()
            .iter()
            .map(|(k, grp)| (k.clone(), grp.state()))
            .collect()
    })
}

/// DeleteGroups of a share group: only an empty one (else NON_EMPTY_GROUP); `None` when no
/// share group has the name.
pub fn delete(group_id: &str) -> Option<i16> {
    SHARE_GROUPS.with(|g| {
        let mut g = g.borrow_mut();
        let grp = g.get(group_id)?;
        if !grp.members.is_empty() {
            return Some(ec::NON_EMPTY_GROUP);
        }
        g.remove(group_id);
        Some(ec::NONE)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hb(id: &str, epoch: i32, topics: Option<&[&str]>) -> Heartbeat {
        Heartbeat {
            member_id: id.into(),
            member_epoch: epoch,
            rack_id: None,
            topics: topics.map(|t| t.iter().map(|s| s.to_string()).collect()),
            client_id: "c".into(),
            client_host: "h".into(),
        }
    }

    #[test]
    fn members_share_a_partition_when_they_outnumber_them() {
        let parts: BTreeMap<String, i32> = [("t".to_string(), 1)].into();
        let s = Settings {
            session_timeout: Duration::from_secs(45),
            max_size: 200,
        };
        let a = heartbeat("sg-test-1", hb("a", 0, Some(&["t"])), &parts, &s);
        assert_eq!(a.error, ec::NONE);
        assert_eq!(a.assignment.unwrap()["t"], [0].into());
        let b = heartbeat("sg-test-1", hb("b", 0, Some(&["t"])), &parts, &s);
        assert_eq!(b.assignment.unwrap()["t"], [0].into());
        // a learns of the new epoch; its assignment did not change, so none is sent.
        let a2 = heartbeat("sg-test-1", hb("a", a.epoch, None), &parts, &s);
        assert_eq!(
            (a2.error, a2.epoch, a2.assignment),
            (ec::NONE, b.epoch, None)
        );
        // A stale epoch is fenced.
        let stale = heartbeat("sg-test-1", hb("a", a.epoch, None), &parts, &s);
        assert_eq!(stale.error, ec::FENCED_MEMBER_EPOCH);
        let left = heartbeat("sg-test-1", hb("b", -1, None), &parts, &s);
        assert_eq!((left.error, left.epoch), (ec::NONE, -1));
    }

    #[test]
    fn partitions_are_dealt_round_robin() {
        let parts: BTreeMap<String, i32> = [("t".to_string(), 4)].into();
        let s = Settings {
            session_timeout: Duration::from_secs(45),
            max_size: 200,
        };
        heartbeat("sg-test-2", hb("a", 0, Some(&["t"])), &parts, &s);
        let b = heartbeat("sg-test-2", hb("b", 0, Some(&["t"])), &parts, &s);
        assert_eq!(b.assignment.unwrap()["t"], [1, 3].into());
        let full = heartbeat(
            "sg-test-2",
            hb("c", 0, Some(&["t"])),
            &parts,
            &Settings {
                session_timeout: Duration::from_secs(45),
                max_size: 2,
            },
        );
        assert_eq!(full.error, ec::GROUP_MAX_SIZE_REACHED);
    }
}
