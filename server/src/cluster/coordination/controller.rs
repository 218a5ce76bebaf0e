//! The controller's decisions: from a view of the cluster, the state writes that elect leaders,
//! shrink ISRs for controlled shutdown and delete topics.

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
///   ISR, so that the last in-sync replica can lead again when it returns: never an out-of-sync
///   one (`unclean.leader.election.enable=false`).
/// * A live leader's ISR loses the brokers in controlled shutdown.
/// * Topics marked for deletion lose every znode.
pub fn decide(view: &ClusterView, controller_epoch: i32) -> Vec<(String, Vec<Op>)> {
    let live = |b: &i32| view.brokers.contains_key(b);
    let leaving = |b: &i32| view.shutting_down.contains(b);
    let mut out = Vec::new();
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
        for (p, (replicas, s)) in t.replicas.iter().zip(&t.states).enumerate() {
            let Some(s) = s else { continue };
            let leader_ok = s.leader >= 0 && live(&s.leader) && !leaving(&s.leader);
            if leader_ok {
                let isr: Vec<i32> = s
                    .isr
                    .iter()
                    .copied()
                    .filter(|b| *b == s.leader || !leaving(b))
                    .collect();
                if isr != s.isr {
                    let n = PartitionState {
                        isr,
                        controller_epoch,
                        ..s.clone()
                    };
                    out.push((
                        format!("{name}-{p}: ISR {:?} (controlled shutdown)", n.isr),
                        vec![Op::Set {
                            path: state_path(name, p),
                            data: state_json(&n),
                            version: s.version,
                        }],
                    ));
                }
                continue;
            }
            let candidate = replicas
                .iter()
                .copied()
                .find(|b| s.isr.contains(b) && live(b) && !leaving(b));
            let n = match candidate {
                Some(leader) => PartitionState {
                    leader,
                    leader_epoch: s.leader_epoch + 1,
                    isr: s
                        .isr
                        .iter()
                        .copied()
                        .filter(|b| live(b) && !leaving(b))
                        .collect(),
                    controller_epoch,
                    version: s.version,
                },
                // Only the leader itself is in sync and it is leaving: it stays.
                None if s.leader >= 0 && live(&s.leader) => continue,
                None if s.leader < 0 => continue,
                None => PartitionState {
                    leader: -1,
                    leader_epoch: s.leader_epoch + 1,
                    isr: s.isr.clone(),
                    controller_epoch,
                    version: s.version,
                },
            };
            out.push((
                format!(
                    "{name}-{p}: leader {} -> {}, leader epoch {}, ISR {:?}",
                    s.leader, n.leader, n.leader_epoch, n.isr
                ),
                vec![Op::Set {
                    path: state_path(name, p),
                    data: state_json(&n),
                    version: s.version,
                }],
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{BrokerInfo, TopicInfo};

    fn view(brokers: &[i32], isr: &[i32], leader: i32) -> ClusterView {
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
                replicas: vec![vec![1, 2, 3]],
                configs: Default::default(),
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
        let w = written(&decide(&view(&[2, 3], &[1, 2], 1), 2));
        assert_eq!(w.len(), 1);
        assert_eq!(
            (w[0].leader, w[0].leader_epoch, w[0].isr.clone()),
            (2, 5, vec![2])
        );
        // Only out-of-sync replicas live: offline, ISR kept for the last in-sync one.
        let w = written(&decide(&view(&[2, 3], &[1], 1), 2));
        assert_eq!((w[0].leader, w[0].isr.clone()), (-1, vec![1]));
        // It returns: it leads again.
        let w = written(&decide(&view(&[1, 3], &[1], -1), 2));
        assert_eq!((w[0].leader, w[0].leader_epoch), (1, 5));
        // A live leader: nothing to do.
        assert!(decide(&view(&[1, 2, 3], &[1, 2], 1), 2).is_empty());
    }

    #[test]
    fn controlled_shutdown_moves_leadership_within_the_isr() {
        let mut v = view(&[1, 2, 3], &[1, 2, 3], 1);
        v.shutting_down.insert(1);
        let w = written(&decide(&v, 2));
        assert_eq!((w[0].leader, w[0].isr.clone()), (2, vec![2, 3]));
        // A leaving follower leaves the ISR; the leader and epoch stay.
        let mut v = view(&[1, 2, 3], &[1, 2, 3], 1);
        v.shutting_down.insert(3);
        let w = written(&decide(&v, 2));
        assert_eq!(
            (w[0].leader, w[0].leader_epoch, w[0].isr.clone()),
            (1, 4, vec![1, 2])
        );
    }
}
