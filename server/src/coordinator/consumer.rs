//! KIP-848 consumer groups (`group.protocol=consumer`): the coordinator computes the assignment
//! (the server-side assignors of [`super::assignor`]) and hands it to each member through
//! ConsumerGroupHeartbeat, incrementally: a partition moves to its new owner only after its old
//! owner has acknowledged revoking it, so no partition is ever owned by two members.
//!
//! Epochs, as Kafka keeps them: the group epoch is bumped by every change of membership,
//! subscriptions or the subscribed topics' partition counts; the target assignment is computed
//! for it (its assignment epoch); a member's epoch moves to the assignment epoch once it has
//! revoked what it no longer owns, and commits are checked against it (STALE_MEMBER_EPOCH).
//!
//! The state lives on the coordinator's shard and is written to the group's offsets partition
//! as Kafka's consumer-group records after every change ([`super::consumer_log`]), so a new
//! coordinator takes over the members with their epochs and assignments.

use super::assignor::{self, MemberSpec, Parts, Racks};
use super::{Group, GroupState, GROUPS};
use crate::error_code as ec;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// The coordinator's KIP-848 settings (`group.consumer.*`).
#[derive(Clone, Debug)]
pub struct Settings {
    pub session_timeout: Duration,
    pub heartbeat_interval_ms: i32,
    /// Canonical assignor names; the first is the default.
    pub assignors: Vec<String>,
    pub max_size: usize,
    /// `group.consumer.migration.policy`.
    pub migration_policy: String,
}

pub struct ConsumerMember {
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout: Duration,
    pub topics: Vec<String>,
    pub regex: Option<String>,
    pub assignor: Option<String>,
    pub epoch: i32,
    pub previous_epoch: i32,
    /// What the member owns (was told to own).
    pub assigned: Parts,
    /// Partitions it was told to give up and has not confirmed yet: nobody else gets them.
    pub revoking: Parts,
    pub revoke_deadline: Option<Instant>,
    pub last_heartbeat: Instant,
    /// The assignment last sent; `None`: send it with the next answer.
    pub(super) sent: Option<Parts>,
    /// Left with epoch -2 (a static member restarting): its partitions wait for it until its
    /// session times out.
    pub(super) left_static: bool,
    /// Set for a member that speaks the classic protocol (JoinGroup/SyncGroup) in this group
    /// ([`super::migration`]).
    pub classic: Option<super::migration::ClassicMeta>,
}

impl ConsumerMember {
    /// A member that owns nothing yet, at epoch 0: (instance id, client id, client host).
    pub(super) fn new(
        rebalance_timeout: Duration,
        ids: (Option<String>, String, String),
        now: Instant,
    ) -> ConsumerMember {
        let (instance_id, client_id, client_host) = ids;
        ConsumerMember {
            instance_id,
            rack_id: None,
            client_id,
            client_host,
            rebalance_timeout,
            topics: Vec::new(),
            regex: None,
            assignor: None,
            epoch: 0,
            previous_epoch: 0,
            assigned: Parts::new(),
            revoking: Parts::new(),
            revoke_deadline: None,
            last_heartbeat: now,
            sent: None,
            left_static: false,
            classic: None,
        }
    }
}

#[derive(Default)]
pub struct ConsumerGroup {
    pub epoch: i32,
    pub assignment_epoch: i32,
    pub assignor: String,
    pub members: BTreeMap<String, ConsumerMember>,
    pub target: BTreeMap<String, Parts>,
    /// Partition counts of the subscribed topics the target was computed with.
    pub(super) layout: BTreeMap<String, i32>,
    /// Loaded from the offsets log: the hash of the layout the target was computed with; the
    /// first refresh adopts the current layout without a new epoch when it matches.
    pub(super) layout_hash: Option<i64>,
}

impl ConsumerGroup {
    /// Kafka's states: Empty, Assigning (target behind the group epoch), Reconciling (a member
    /// not yet at the target), Stable.
    pub fn state(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.assignment_epoch < self.epoch {
            "Assigning"
        } else if self.members.iter().any(|(id, m)| {
            m.epoch != self.assignment_epoch
                || !m.revoking.is_empty()
                || self.target.get(id).is_some_and(|t| *t != m.assigned)
        }) {
            "Reconciling"
        } else {
            "Stable"
        }
    }
}

/// One ConsumerGroupHeartbeat, decoded.
pub struct Heartbeat {
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub topics: Option<Vec<String>>,
    pub regex: Option<String>,
    pub assignor: Option<String>,
    /// The partitions the member owns now (sent when they changed), by topic name.
    pub owned: Option<Parts>,
    pub client_id: String,
    pub client_host: String,
}

#[derive(Debug, Default)]
pub struct HeartbeatAnswer {
    pub error: i16,
    pub message: Option<String>,
    pub member_id: String,
    pub epoch: i32,
    pub assignment: Option<Parts>,
}

fn refuse(error: i16, message: impl Into<String>) -> HeartbeatAnswer {
    HeartbeatAnswer {
        error,
        message: Some(message.into()),
        ..Default::default()
    }
}

/// The cluster as the assignors see it: every topic's partition count, and its replicas' racks.
pub struct Topics {
    pub partitions: BTreeMap<String, i32>,
    pub racks: Racks,
}

/// Serves one heartbeat on the group's shard.
pub fn heartbeat(
    group_id: &str,
    hb: Heartbeat,
    topics: &Topics,
    settings: &Settings,
) -> HeartbeatAnswer {
    let now = Instant::now();
    if super::share::has_members(group_id) {
        return refuse(
            ec::GROUP_ID_NOT_FOUND,
            format!("Group {group_id} is not a consumer group."),
        );
    }
    GROUPS.with(|g| {
        let mut g = g.borrow_mut();
        // Only a join creates a group: a heartbeat or leave for a group this coordinator does
        // not know gets Kafka's GROUP_ID_NOT_FOUND (membership is durable, so a coordinator
        // move keeps the group; see consumer_log).
        if hb.member_epoch != 0 && g.get(group_id).is_none_or(|grp| grp.consumer.is_none()) {
            return refuse(
                ec::GROUP_ID_NOT_FOUND,
                format!("Group {group_id} not found."),
            );
        }
        let grp = g.entry(group_id.to_string()).or_insert_with(Group::new);
        if grp.consumer.is_none() {
            if grp.state != GroupState::Empty || !grp.members.is_empty() {
                // A classic group with members: KIP-848's online upgrade.
                let upgraded = if super::migration::upgrade_allowed(&settings.migration_policy) {
                    super::migration::upgrade(grp, settings.max_size)
                } else {
                    Err("the online upgrade is disabled".into())
                };
                if let Err(why) = upgraded {
                    tracing::info!(
                        group = group_id,
                        why,
                        "cannot upgrade the classic group to a consumer group"
                    );
                    return refuse(
                        ec::GROUP_ID_NOT_FOUND,
                        format!("Group {group_id} is not a consumer group"),
                    );
                }
                tracing::info!(
                    group = group_id,
                    "classic group upgraded to a consumer group"
                );
            } else {
                // An empty classic group (or a new one) becomes a consumer group; offsets stay.
                grp.consumer = Some(ConsumerGroup::default());
            }
        }
        let cg = grp.consumer.as_mut().expect("consumer group");
        let leaving = hb.member_epoch < 0;
        let answer = serve(cg, hb, topics, settings, now);
        if leaving {
            super::migration::maybe_downgrade(group_id, grp, &settings.migration_policy);
        }
        answer
    })
}

fn serve(
    cg: &mut ConsumerGroup,
    hb: Heartbeat,
    topics: &Topics,
    settings: &Settings,
    now: Instant,
) -> HeartbeatAnswer {
    if let Some(a) = &hb.assignor {
        if assignor::canonical(a).is_none_or(|c| !settings.assignors.iter().any(|s| s == c)) {
            return refuse(
                ec::UNSUPPORTED_ASSIGNOR,
                format!("assignor {a} is not supported"),
            );
        }
    }
    let member_id = match hb.member_epoch {
        -1 | -2 => return leave(cg, &hb),
        0 => match join(cg, &hb, settings, now) {
            Ok(id) => id,
            Err(a) => return a,
        },
        e if e > 0 => {
            let Some(m) = cg.members.get(&hb.member_id) else {
                return refuse(
                    ec::UNKNOWN_MEMBER_ID,
                    format!("member {} is not in the group", hb.member_id),
                );
            };
            let lost_answer = e == m.previous_epoch
                && hb.owned.as_ref().is_some_and(|o| is_subset(o, &m.assigned));
            if e != m.epoch && !lost_answer {
                return refuse(
                    ec::FENCED_MEMBER_EPOCH,
                    format!("member epoch {e} is not the member's epoch {}", m.epoch),
                );
            }
            hb.member_id.clone()
        }
        e => return refuse(ec::INVALID_REQUEST, format!("invalid member epoch {e}")),
    };
    update_member(cg, &member_id, &hb, now);
    refresh_target(cg, topics, settings);
    reconcile(cg, &member_id, hb.owned.as_ref(), now);
    let m = cg.members.get_mut(&member_id).expect("member");
    let assignment = (m.sent.as_ref() != Some(&m.assigned)).then(|| {
        m.sent = Some(m.assigned.clone());
        m.assigned.clone()
    });
    HeartbeatAnswer {
        error: ec::NONE,
        message: None,
        member_id,
        epoch: m.epoch,
        assignment,
    }
}

fn leave(cg: &mut ConsumerGroup, hb: &Heartbeat) -> HeartbeatAnswer {
    let answer = HeartbeatAnswer {
        member_id: hb.member_id.clone(),
        epoch: hb.member_epoch,
        ..Default::default()
    };
    let Some(m) = cg.members.get_mut(&hb.member_id) else {
        return refuse(
            ec::UNKNOWN_MEMBER_ID,
            format!("member {} is not in the group", hb.member_id),
        );
    };
    if hb.member_epoch == -2 && m.instance_id.is_some() {
        // A static member's restart: its partitions wait for it (until its session times out).
        m.left_static = true;
        return answer;
    }
    cg.members.remove(&hb.member_id);
    cg.target.remove(&hb.member_id);
    cg.epoch += 1;
    answer
}

/// A member joining (epoch 0): a new one, one rejoining after being fenced, or a static member
/// taking its instance's place back.
fn join(
    cg: &mut ConsumerGroup,
    hb: &Heartbeat,
    settings: &Settings,
    now: Instant,
) -> Result<String, HeartbeatAnswer> {
    if hb.topics.is_none() && hb.regex.is_none() {
        return Err(refuse(
            ec::INVALID_REQUEST,
            "SubscribedTopicNames or SubscribedTopicRegex must be set in the first request",
        ));
    }
    if hb.rebalance_timeout_ms < 0 {
        return Err(refuse(
            ec::INVALID_REQUEST,
            "RebalanceTimeoutMs must be set in the first request",
        ));
    }
    if let Some(re) = &hb.regex {
        if regex::Regex::new(re).is_err() {
            return Err(refuse(
                ec::INVALID_REGULAR_EXPRESSION,
                format!("invalid regular expression {re}"),
            ));
        }
    }
    let member_id = if hb.member_id.is_empty() {
        uuid::Uuid::new_v4().simple().to_string()
    } else {
        hb.member_id.clone()
    };
    // Static membership: the instance's previous member hands over its place.
    let mut inherited = None;
    if let Some(inst) = &hb.instance_id {
        let previous = cg
            .members
            .iter()
            .find(|(id, m)| m.instance_id.as_ref() == Some(inst) && **id != member_id)
            .map(|(id, m)| (id.clone(), m.left_static));
        if let Some((old, left)) = previous {
            if !left {
                return Err(refuse(
                    ec::UNRELEASED_INSTANCE_ID,
                    format!("instance {inst} is still in use by member {old}"),
                ));
            }
            let m = cg.members.remove(&old).expect("member");
            let target = cg.target.remove(&old);
            inherited = Some((m, target));
        }
    }
    if !cg.members.contains_key(&member_id)
        && inherited.is_none()
        && cg.members.len() >= settings.max_size
    {
        return Err(refuse(
            ec::GROUP_MAX_SIZE_REACHED,
            format!(
                "the group has reached group.consumer.max.size {}",
                settings.max_size
            ),
        ));
    }
    let mut member = ConsumerMember::new(
        Duration::from_millis(hb.rebalance_timeout_ms as u64),
        (
            hb.instance_id.clone(),
            hb.client_id.clone(),
            hb.client_host.clone(),
        ),
        now,
    );
    member.rack_id = hb.rack_id.clone();
    match inherited {
        Some((old, target)) => {
            // The new incarnation owns what the old one owned, at its epoch.
            member.epoch = old.epoch;
            member.previous_epoch = old.previous_epoch;
            member.assigned = old.assigned;
            member.revoking = old.revoking;
            member.topics = old.topics;
            member.regex = old.regex;
            if let Some(t) = target {
                cg.target.insert(member_id.clone(), t);
            }
        }
        None => {
            // New, or rejoining after a fence: it owns nothing now (the client gave its
            // partitions up); its subscription change (if any) bumps the group epoch below.
            if cg.members.remove(&member_id).is_none() {
                cg.epoch += 1;
            }
        }
    }
    cg.members.insert(member_id.clone(), member);
    Ok(member_id)
}

pub(super) fn update_member(cg: &mut ConsumerGroup, member_id: &str, hb: &Heartbeat, now: Instant) {
    let m = cg.members.get_mut(member_id).expect("member");
    m.last_heartbeat = now;
    m.left_static = false;
    let mut changed = false;
    if let Some(t) = &hb.topics {
        let mut t = t.clone();
        t.sort();
        t.dedup();
        changed |= m.topics != t;
        m.topics = t;
    }
    if hb.regex.is_some() {
        changed |= m.regex != hb.regex.clone().filter(|r| !r.is_empty());
        m.regex = hb.regex.clone().filter(|r| !r.is_empty());
    }
    if hb.assignor.is_some() {
        m.assignor = hb
            .assignor
            .as_deref()
            .and_then(assignor::canonical)
            .map(String::from);
    }
    if hb.rack_id.is_some() {
        // The uniform assignor places partitions by rack: a move is a change.
        changed |= m.rack_id != hb.rack_id;
        m.rack_id = hb.rack_id.clone();
    }
    if hb.rebalance_timeout_ms > 0 {
        m.rebalance_timeout = Duration::from_millis(hb.rebalance_timeout_ms as u64);
    }
    if !hb.client_id.is_empty() {
        m.client_id = hb.client_id.clone();
    }
    if changed {
        cg.epoch += 1;
    }
}

/// The topics a member's subscription names that exist (names and its regex; internal topics
/// only by name).
fn subscribed(m: &ConsumerMember, topics: &BTreeMap<String, i32>) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = m
        .topics
        .iter()
        .filter(|t| topics.contains_key(*t))
        .cloned()
        .collect();
    if let Some(re) = m
        .regex
        .as_deref()
        .and_then(|r| regex::Regex::new(&format!("^(?:{r})$")).ok())
    {
        out.extend(
            topics
                .keys()
                .filter(|t| !t.starts_with("__") && re.is_match(t))
                .cloned(),
        );
    }
    out
}

/// Recomputes the target assignment when the group epoch moved or a subscribed topic's
/// partition count changed.
pub(super) fn refresh_target(cg: &mut ConsumerGroup, cluster: &Topics, settings: &Settings) {
    let topics = &cluster.partitions;
    let subs: BTreeMap<String, BTreeSet<String>> = cg
        .members
        .iter()
        .map(|(id, m)| (id.clone(), subscribed(m, topics)))
        .collect();
    let layout: BTreeMap<String, i32> = subs
        .values()
        .flatten()
        .map(|t| (t.clone(), topics[t]))
        .collect();
    if let Some(h) = cg.layout_hash.take() {
        if h == super::consumer_log::layout_hash(&layout) {
            cg.layout = layout.clone();
        }
    }
    if layout != cg.layout {
        cg.epoch += 1;
    }
    if cg.assignment_epoch >= cg.epoch {
        return;
    }
    // The members' preferred assignor (the most common one), else the configured default.
    let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
    for m in cg.members.values() {
        if let Some(a) = &m.assignor {
            *votes.entry(a.as_str()).or_default() += 1;
        }
    }
    let chosen = votes
        .into_iter()
        .max_by_key(|(_, n)| *n)
        .map(|(a, _)| a.to_string())
        .unwrap_or_else(|| {
            settings
                .assignors
                .first()
                .cloned()
                .unwrap_or_else(|| "uniform".into())
        });
    let specs: BTreeMap<String, MemberSpec<'_>> = cg
        .members
        .iter()
        .map(|(id, m)| {
            (
                id.clone(),
                MemberSpec {
                    topics: &subs[id],
                    current: cg.target.get(id).unwrap_or(&m.assigned),
                    rack: m.rack_id.as_deref(),
                },
            )
        })
        .collect();
    let target = assignor::assign(&chosen, &specs, &layout, &cluster.racks);
    cg.target = target;
    cg.assignor = chosen;
    cg.layout = layout;
    cg.assignment_epoch = cg.epoch;
}

/// Moves a member toward its target: first it gives up what it no longer owns (and confirms
/// it, listing what it owns), then it gets the target's partitions nobody else still holds, at
/// the target's epoch.
pub(super) fn reconcile(
    cg: &mut ConsumerGroup,
    member_id: &str,
    owned: Option<&Parts>,
    now: Instant,
) {
    let target = cg.target.get(member_id).cloned().unwrap_or_default();
    let held_elsewhere: BTreeSet<(String, i32)> = cg
        .members
        .iter()
        .filter(|(id, _)| *id != member_id)
        .flat_map(|(_, m)| pairs(&m.assigned).chain(pairs(&m.revoking)))
        .collect();
    let epoch = cg.assignment_epoch;
    let m = cg.members.get_mut(member_id).expect("member");
    if !m.revoking.is_empty() {
        if owned.is_some_and(|o| pairs(o).all(|p| !contains(&m.revoking, &p))) {
            m.revoking.clear();
            m.revoke_deadline = None;
        } else {
            return;
        }
    }
    let revoke: Parts = minus(&m.assigned, &target);
    if !revoke.is_empty() {
        m.assigned = minus(&m.assigned, &revoke);
        m.revoking = revoke;
        m.revoke_deadline = Some(now + m.rebalance_timeout);
        return;
    }
    for (t, p) in pairs(&target) {
        if !held_elsewhere.contains(&(t.clone(), p)) {
            m.assigned.entry(t).or_default().insert(p);
        }
    }
    if m.epoch != epoch {
        m.previous_epoch = m.epoch;
        m.epoch = epoch;
    }
}

fn pairs(p: &Parts) -> impl Iterator<Item = (String, i32)> + '_ {
    p.iter()
        .flat_map(|(t, ps)| ps.iter().map(move |p| (t.clone(), *p)))
}

fn contains(p: &Parts, (t, n): &(String, i32)) -> bool {
    p.get(t).is_some_and(|s| s.contains(n))
}

fn minus(a: &Parts, b: &Parts) -> Parts {
    let mut out = Parts::new();
    for (t, p) in pairs(a) {
        if !contains(b, &(t.clone(), p)) {
            out.entry(t).or_default().insert(p);
        }
    }
    out
}

fn is_subset(a: &Parts, b: &Parts) -> bool {
    pairs(a).all(|p| contains(b, &p))
}

/// The session timer's work for one group: members silent past the session timeout, and
/// members that did not give up partitions within their rebalance timeout, are removed.
pub(super) fn expire(name: &str, cg: &mut ConsumerGroup, session: Duration, now: Instant) -> bool {
    let gone: Vec<String> = cg
        .members
        .iter()
        .filter(|(_, m)| {
            let session = m.classic.as_ref().map_or(session, |c| c.session_timeout);
            now.duration_since(m.last_heartbeat) > session
                || m.revoke_deadline.is_some_and(|d| now > d)
        })
        .map(|(id, _)| id.clone())
        .collect();
    let any = !gone.is_empty();
    for id in gone {
        tracing::info!(group = %name, member = %id, "consumer group member removed (session or rebalance timeout)");
        cg.members.remove(&id);
        cg.target.remove(&id);
        cg.epoch += 1;
    }
    any
}

/// OffsetCommit / TxnOffsetCommit by a member of a consumer group: its epoch must be current.
pub(super) fn check_commit(cg: &ConsumerGroup, epoch: i32, member_id: &str) -> i16 {
    // Epoch -1: an admin client or a consumer outside group management, allowed while the group
    // has no member (Kafka's rule; the member id it sends does not matter).
    if epoch < 0 && cg.members.is_empty() {
        return ec::NONE;
    }
    match cg.members.get(member_id) {
        None => ec::UNKNOWN_MEMBER_ID,
        // A classic member of a mixed group commits with its generation (Kafka's rule).
        Some(m) if m.epoch != epoch && m.classic.is_some() => ec::ILLEGAL_GENERATION,
        Some(m) if m.epoch != epoch => ec::STALE_MEMBER_EPOCH,
        Some(_) => ec::NONE,
    }
}
