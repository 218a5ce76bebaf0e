//! The controller's decisions: from a view of the cluster, the state writes that elect leaders,
//! shrink ISRs for controlled shutdown, delete topics, move replicas ([`super::reassign`]) and
//! leadership back to preferred replicas.

use super::json::*;
use crate::cluster::store::Op;
use crate::cluster::{ClusterView, PartitionState};

/// The znodes of partitions that have no state yet (a new topic's, or partitions just added):
/// each led by its first live replica not shutting down, with its live replicas in sync.
fn new_states(
    name: &str,
    t: &crate::cluster::TopicInfo,
    missing: &[usize],
    controller_epoch: i32,
    live: &dyn Fn(&i32) -> bool,
    leaving: &dyn Fn(&i32) -> bool,
) -> Vec<Op> {
    let mut ops = Vec::new();
    for &p in missing {
        let replicas = &t.replicas[p];
        let isr: Vec<i32> = replicas.iter().copied().filter(|b| live(b)).collect();
        let leader = isr
            .iter()
            .copied()
            .find(|b| !leaving(b))
            .or(isr.first().copied())
            .unwrap_or(-1);
        let s = PartitionState {
            leader,
            leader_epoch: 0,
            isr: if isr.is_empty() {
                replicas.clone()
            } else {
                isr
            },
            controller_epoch,
            version: 0,
        };
        ops.push(Op::Create {
            path: format!("/brokers/topics/{name}/partitions/{p}"),
            data: Vec::new(),
        });
        ops.push(Op::Create {
            path: state_path(name, p),
            data: state_json(&s),
        });
    }
    ops
}

/// The controller's decisions for a view: `(description, ops)` per write, each to be applied
/// behind a check of the controller epoch.
///
/// * A partition without state gets one: the first live replica leads, the live replicas are
///   the ISR, leader epoch 0.
/// * A partition whose leader is gone (or shutting down) gets the first live, not shutting down
///   replica of its ISR (assignment order) as leader, leader epoch + 1, and the ISR minus the
///   dead and shutting-down brokers. With no such replica it goes offline (leader -1) and keeps its
///   ISR, so that the last in-sync replica can lead again when it returns; unless unclean
///   election is enabled for its topic ([`unclean_enabled`]) or an ElectLeaders asked for one:
///   then the first live replica of its assignment leads alone (ISR = itself), and what only the
///   old ISR had is lost.
/// * A live leader's ISR loses the brokers in controlled shutdown.
/// * Topics marked for deletion lose every znode.
pub fn decide(
    view: &ClusterView,
    controller_epoch: i32,
    rebalance: Option<u32>,
    unclean_default: bool,
) -> Vec<(String, Vec<Op>)> {
    let live = |b: &i32| view.brokers.contains_key(b);
    let leaving = |b: &i32| view.shutting_down.contains(b);
    let mut out = Vec::new();
    let unclean_default = unclean_enabled(view, None, unclean_default);
    for (name, t) in &view.topics {
        if view.deleting.contains(name) {
            let mut ops = Vec::new();
            for (p, s) in t.states.iter().enumerate() {
                if s.is_some() {
                    ops.push(Op::Delete {
                        path: state_path(name, p),
                    });
                }
            }
            // Partition directories exist when any state does (created together).
            if t.states.iter().any(Option::is_some) {
                for p in 0..t.states.len() {
                    ops.push(Op::Delete {
                        path: format!("/brokers/topics/{name}/partitions/{p}"),
                    });
                }
                ops.push(Op::Delete {
                    path: format!("/brokers/topics/{name}/partitions"),
                });
            }
            ops.push(Op::Delete {
                path: format!("/brokers/topics/{name}"),
            });
            ops.push(Op::Delete {
                path: format!("/admin/delete_topics/{name}"),
            });
            out.push((format!("deleted topic {name}"), ops));
            continue;
        }
        let missing: Vec<usize> = (0..t.replicas.len())
            .filter(|p| t.states.get(*p).is_none_or(Option::is_none))
            .collect();
        if !missing.is_empty() {
            // A new topic (no state yet: its partitions node too) or partitions just added.
            let mut ops = Vec::new();
            if t.states.iter().all(Option::is_none) {
                ops.push(Op::Create {
                    path: format!("/brokers/topics/{name}/partitions"),
                    data: Vec::new(),
                });
            }
            ops.extend(new_states(
                name,
                t,
                &missing,
                controller_epoch,
                &live,
                &leaving,
            ));
            out.push((
                format!("created partition states of {name} {missing:?}"),
                ops,
            ));
            continue;
        }
        let topic_unclean = unclean_enabled(view, Some(t), unclean_default);
        for (p, (replicas, s)) in t.replicas.iter().zip(&t.states).enumerate() {
            let Some(s) = s else { continue };
            let unclean =
                topic_unclean || view.unclean_elections.contains(&(name.clone(), p as i32));
            if let Some((why, n)) = leadership(view, replicas, s, controller_epoch, unclean) {
                out.push((
                    format!("{name}-{p}: {why}"),
                    vec![Op::Set {
                        path: state_path(name, p),
                        data: state_json(&n),
                        version: s.version,
                    }],
                ));
            }
        }
    }
    let reassignments = super::reassign::decide(view, controller_epoch, &touched_paths(&out));
    out.extend(reassignments);
    out.extend(preferred_moves(view, controller_epoch, rebalance, &out));
    // An asked unclean election is served once each partition it names has a live leader or no
    // live replica to elect (the znode stays while a write for it may still fail).
    let settled = |(name, p): &(String, i32)| {
        let Some(t) = view.topics.get(name) else {
            return true;
        };
        let (Some(r), Some(Some(s))) = (t.replicas.get(*p as usize), t.states.get(*p as usize))
        else {
            return true;
        };
        (s.leader >= 0 && live(&s.leader)) || !r.iter().any(|b| live(b) && !leaving(b))
    };
    if !view.unclean_elections.is_empty() && view.unclean_elections.iter().all(settled) {
        out.push((
            "unclean leader election served".into(),
            vec![Op::Delete {
                path: super::UNCLEAN_ELECTION_PATH.into(),
            }],
        ));
    }
    out
}

/// One partition's new state, if its leadership or ISR must change (see [`decide`]), with what
/// changed; `unclean` allows an out-of-sync leader when no in-sync replica is alive.
fn leadership(
    view: &ClusterView,
    replicas: &[i32],
    s: &PartitionState,
    controller_epoch: i32,
    unclean: bool,
) -> Option<(String, PartitionState)> {
    let live = |b: &i32| view.brokers.contains_key(b);
    let leaving = |b: &i32| view.shutting_down.contains(b);
    if s.leader >= 0 && live(&s.leader) && !leaving(&s.leader) {
        let isr: Vec<i32> = s
            .isr
            .iter()
            .copied()
            .filter(|b| *b == s.leader || !leaving(b))
            .collect();
        return (isr != s.isr).then(|| {
            let why = format!("ISR {isr:?} (controlled shutdown)");
            let n = PartitionState {
                isr,
                controller_epoch,
                ..s.clone()
            };
            (why, n)
        });
    }
    let candidate = replicas
        .iter()
        .copied()
        .find(|b| s.isr.contains(b) && live(b) && !leaving(b));
    let new = |leader: i32, isr: Vec<i32>| PartitionState {
        leader,
        leader_epoch: s.leader_epoch + 1,
        isr,
        controller_epoch,
        version: s.version,
    };
    let n = match candidate {
        Some(leader) => new(
            leader,
            s.isr
                .iter()
                .copied()
                .filter(|b| live(b) && !leaving(b))
                .collect(),
        ),
        // Only the leader itself is in sync and it is leaving: it stays.
        None if s.leader >= 0 && live(&s.leader) => return None,
        None => {
            let out_of_sync = replicas.iter().copied().find(|b| live(b) && !leaving(b));
            if let Some(leader) = out_of_sync.filter(|_| unclean) {
                tracing::warn!(
                    leader,
                    isr = ?s.isr,
                    "unclean leader election: no in-sync replica is alive; records only they had are lost"
                );
                let n = new(leader, vec![leader]);
                let why = format!(
                    "leader {} -> {} (unclean), leader epoch {}",
                    s.leader, n.leader, n.leader_epoch
                );
                return Some((why, n));
            }
            if s.leader < 0 {
                return None;
            }
            new(-1, s.isr.clone())
        }
    };
    let why = format!(
        "leader {} -> {}, leader epoch {}, ISR {:?}",
        s.leader, n.leader, n.leader_epoch, n.isr
    );
    Some((why, n))
}

/// Whether `unclean.leader.election.enable` holds for topic `t` (or, with `None`, as the cluster
/// default): the topic's config, else the controller's dynamic broker config, else the
/// cluster-wide dynamic default, else `static_default` (`server.properties`).
pub fn unclean_enabled(
    view: &ClusterView,
    t: Option<&crate::cluster::TopicInfo>,
    static_default: bool,
) -> bool {
    const KEY: &str = "unclean.leader.election.enable";
    let parse = |v: &String| v.trim().eq_ignore_ascii_case("true");
    if let Some(t) = t {
        return t.configs.get(KEY).map_or(static_default, parse);
    }
    let own = view.broker_configs.get(&view.controller.to_string());
    let default = view.broker_configs.get("<default>"); // the cluster-wide dynamic default
    own.and_then(|c| c.get(KEY))
        .or_else(|| default.and_then(|c| c.get(KEY)))
        .map_or(static_default, parse)
}

/// The znodes `writes` change.
fn touched_paths(writes: &[(String, Vec<Op>)]) -> std::collections::HashSet<&str> {
    writes
        .iter()
        .flat_map(|(_, ops)| ops)
        .filter_map(|op| match op {
            Op::Set { path, .. } | Op::Create { path, .. } | Op::Delete { path } => {
                Some(path.as_str())
            }
            _ => None,
        })
        .collect()
}

/// Leadership back to preferred replicas (the first of each assignment): the partitions an
/// ElectLeaders named, and, when `rebalance` gives a percentage (`auto.leader.rebalance.enable`),
/// those of every broker whose share of its preferred partitions led elsewhere passes it. Only to
/// a live, in-sync replica that is not shutting down, and never for a partition `earlier`
/// already changes; a pending election's znode goes once it is served.
fn preferred_moves(
    view: &ClusterView,
    controller_epoch: i32,
    rebalance: Option<u32>,
    earlier: &[(String, Vec<Op>)],
) -> Vec<(String, Vec<Op>)> {
    let touched = touched_paths(earlier);
    let mut wanted: std::collections::BTreeSet<(String, i32)> = view.preferred_elections.clone();
    if let Some(pct) = rebalance {
        // Per preferred broker: its partitions, and those led by another broker.
        let mut per: std::collections::BTreeMap<i32, (usize, Vec<(String, i32)>)> =
            Default::default();
        for (name, t) in view
            .topics
            .iter()
            .filter(|(n, _)| !view.deleting.contains(*n))
        {
            for (p, (r, s)) in t.replicas.iter().zip(&t.states).enumerate() {
                let (Some(&pref), Some(s)) = (r.first(), s) else {
                    continue;
                };
                let e = per.entry(pref).or_default();
                e.0 += 1;
                if s.leader != pref {
                    e.1.push((name.clone(), p as i32));
                }
            }
        }
        for (b, (total, off)) in per {
            if total > 0 && off.len() * 100 > total * pct as usize {
                tracing::info!(
                    broker = b,
                    preferred = total,
                    led_elsewhere = off.len(),
                    "leadership imbalance: moving leaders back to the preferred replica"
                );
                wanted.extend(off);
            }
        }
    }
    let live = |b: &i32| view.brokers.contains_key(b) && !view.shutting_down.contains(b);
    let mut out = Vec::new();
    for (name, p) in &wanted {
        let Some(t) = view.topics.get(name) else {
            continue;
        };
        let idx = *p as usize;
        let (Some(Some(&pref)), Some(Some(s))) =
            (t.replicas.get(idx).map(|r| r.first()), t.states.get(idx))
        else {
            continue;
        };
        let path = state_path(name, idx);
        if touched.contains(path.as_str())
            || s.leader == pref
            || s.leader < 0
            || !live(&s.leader)
            || !live(&pref)
            || !s.isr.contains(&pref)
        {
            continue;
        }
        let n = PartitionState {
            leader: pref,
            leader_epoch: s.leader_epoch + 1,
            controller_epoch,
            ..s.clone()
        };
        out.push((
            format!(
                "{name}-{p}: leader {} -> {} (preferred replica), leader epoch {}",
                s.leader, n.leader, n.leader_epoch
            ),
            vec![Op::Set {
                path,
                data: state_json(&n),
                version: s.version,
            }],
        ));
    }
    if !view.preferred_elections.is_empty() {
        out.push((
            "preferred replica election served".into(),
            vec![Op::Delete {
                path: super::ELECTION_PATH.into(),
            }],
        ));
    }
    out
}

/// A view of brokers and topic `t` with one partition: leader epoch 4, state version 9.
#[cfg(test)]
pub(super) fn one_partition_view(
    brokers: &[i32],
    replicas: &[i32],
    isr: &[i32],
    leader: i32,
) -> ClusterView {
    use crate::cluster::{BrokerInfo, TopicInfo};
    let mut v = ClusterView {
        loaded: true,
        ..Default::default()
    };
    for &b in brokers {
        v.brokers.insert(
            b,
            BrokerInfo {
                id: b,
                endpoints: vec![],
                rack: None,
                epoch: 1,
            },
        );
    }
    v.topics.insert(
        "t".into(),
        TopicInfo {
            id: [0; 16],
            replicas: vec![replicas.to_vec()],
            configs: Default::default(),
            reassigning: Default::default(),
            version: 3,
            states: vec![Some(PartitionState {
                leader,
                leader_epoch: 4,
                isr: isr.to_vec(),
                controller_epoch: 1,
                version: 9,
            })],
        },
    );
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(brokers: &[i32], isr: &[i32], leader: i32) -> ClusterView {
        one_partition_view(brokers, &[1, 2, 3], isr, leader)
    }

    fn written(ops: &[(String, Vec<Op>)]) -> Vec<StateJson> {
        ops.iter()
            .flat_map(|(_, o)| o.iter())
            .filter_map(|o| match o {
                Op::Set { data, version, .. } => {
                    assert_eq!(*version, 9, "conditional on the read version");
                    serde_json::from_slice(data).ok()
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn new_leader_comes_from_the_isr_only() {
        // Leader 1 died; 3 is live but out of sync: 2 leads, epoch + 1.
        let w = written(&decide(&view(&[2, 3], &[1, 2], 1), 2, None, false));
        assert_eq!(w.len(), 1);
        assert_eq!(
            (w[0].leader, w[0].leader_epoch, w[0].isr.clone()),
            (2, 5, vec![2])
        );
        // Only out-of-sync replicas live: offline, ISR kept for the last in-sync one.
        let w = written(&decide(&view(&[2, 3], &[1], 1), 2, None, false));
        assert_eq!((w[0].leader, w[0].isr.clone()), (-1, vec![1]));
        // It returns: it leads again.
        let w = written(&decide(&view(&[1, 3], &[1], -1), 2, None, false));
        assert_eq!((w[0].leader, w[0].leader_epoch), (1, 5));
        // A live leader: nothing to do.
        assert!(decide(&view(&[1, 2, 3], &[1, 2], 1), 2, None, false).is_empty());
    }

    #[test]
    fn controlled_shutdown_moves_leadership_within_the_isr() {
        let mut v = view(&[1, 2, 3], &[1, 2, 3], 1);
        v.shutting_down.insert(1);
        let w = written(&decide(&v, 2, None, false));
        assert_eq!((w[0].leader, w[0].isr.clone()), (2, vec![2, 3]));
        // A leaving follower leaves the ISR; the leader and epoch stay.
        let mut v = view(&[1, 2, 3], &[1, 2, 3], 1);
        v.shutting_down.insert(3);
        let w = written(&decide(&v, 2, None, false));
        assert_eq!(
            (w[0].leader, w[0].leader_epoch, w[0].isr.clone()),
            (1, 4, vec![1, 2])
        );
    }

    #[test]
    fn leadership_goes_back_to_the_preferred_replica_when_asked_or_imbalanced() {
        // Replicas [1, 2, 3], leader 2, all in sync: 1 is preferred.
        let v = view(&[1, 2, 3], &[1, 2, 3], 2);
        assert!(decide(&v, 2, None, false).is_empty());
        // The imbalance check moves it (broker 1 leads 0 of its 1 preferred partition).
        let w = written(&decide(&v, 2, Some(10), false));
        assert_eq!(
            (w[0].leader, w[0].leader_epoch, w[0].isr.clone()),
            (1, 5, vec![1, 2, 3])
        );
        // An ElectLeaders does too, and its znode goes.
        let mut asked = v.clone();
        asked.preferred_elections.insert(("t".into(), 0));
        let d = decide(&asked, 2, None, false);
        assert_eq!(written(&d)[0].leader, 1);
        assert!(matches!(d.last().unwrap().1[0], Op::Delete { .. }));
        // Not to a preferred replica out of the ISR, nor one shutting down.
        let mut out_of_sync = view(&[1, 2, 3], &[2, 3], 2);
        out_of_sync.preferred_elections.insert(("t".into(), 0));
        assert!(written(&decide(&out_of_sync, 2, Some(10), false)).is_empty());
        let mut leaving = view(&[1, 2, 3], &[1, 2, 3], 2);
        leaving.shutting_down.insert(1);
        assert!(written(&decide(&leaving, 2, Some(10), false))
            .iter()
            .all(|s| s.leader != 1));
    }

    #[test]
    fn unclean_election_only_when_enabled_or_asked_and_no_isr_member_lives() {
        // ISR [1] is dead, 2 and 3 live out of sync: offline unless enabled.
        let v = view(&[2, 3], &[1], -1);
        assert!(decide(&v, 2, None, false).is_empty());
        // Enabled by the static default: 2 (first live of the assignment) leads alone.
        let w = written(&decide(&v, 2, None, true));
        assert_eq!(
            (w[0].leader, w[0].leader_epoch, w[0].isr.clone()),
            (2, 5, vec![2])
        );
        // The topic's config overrides the default, either way.
        let mut off = v.clone();
        off.topics
            .get_mut("t")
            .unwrap()
            .configs
            .insert("unclean.leader.election.enable".into(), "false".into());
        assert!(decide(&off, 2, None, true).is_empty());
        let mut on = v.clone();
        on.topics
            .get_mut("t")
            .unwrap()
            .configs
            .insert("unclean.leader.election.enable".into(), "true".into());
        assert_eq!(written(&decide(&on, 2, None, false))[0].leader, 2);
        // The cluster-wide dynamic default overrides server.properties.
        let mut dynamic = v.clone();
        dynamic.broker_configs.insert(
            "<default>".into(),
            [("unclean.leader.election.enable".into(), "true".into())].into(),
        );
        assert_eq!(written(&decide(&dynamic, 2, None, false))[0].leader, 2);
        // Asked by ElectLeaders: elected; the znode stays until the view shows a leader.
        let mut asked = v.clone();
        asked.unclean_elections.insert(("t".into(), 0));
        let d = decide(&asked, 2, None, false);
        assert_eq!(written(&d)[0].leader, 2);
        assert!(!d.iter().any(|(_, o)| matches!(o[0], Op::Delete { .. })));
        let mut led = view(&[2, 3], &[2], 2);
        led.unclean_elections.insert(("t".into(), 0));
        let d = decide(&led, 2, None, false);
        assert!(matches!(d.last().unwrap().1[0], Op::Delete { .. }));
        // A live in-sync replica always wins over an unclean choice.
        let w = written(&decide(&view(&[2, 3], &[1, 3], 1), 2, None, true));
        assert_eq!((w[0].leader, w[0].isr.clone()), (3, vec![3]));
    }
}
