//! Partition reassignment (KIP-455) as Kafka's ZooKeeper-mode controller runs it.
//!
//! A reassignment from the original replicas (ORS) to a target (TRS) first writes the union
//! `TRS ++ (ORS - TRS)` as the partition's replicas, with `adding_replicas` (TRS - ORS) and
//! `removing_replicas` (ORS - TRS) in the topic znode, Kafka's layout. Every broker named opens the
//! partition; the new replicas fetch from the leader and join the ISR when caught up. Once every
//! target replica is in the ISR the controller completes it in one conditional write: replicas =
//! TRS, ISR = ISR ∩ TRS, and a new leader (epoch + 1) from TRS when the old one is leaving. The
//! brokers no longer named then drop their copy. A cancellation is a reassignment back to the
//! original replicas, completed at once.
//!
//! Requests reach the controller through `/admin/reassign_partitions` (the broker that took the
//! AlterPartitionReassignments writes it; there are no broker-to-controller RPCs here), and each
//! topic's start or completion is one `multi` with the state znodes it changes, so that no view
//! ever shows a leader or an in-sync replica outside the replicas.

use super::json::*;
use crate::cluster::store::{MetadataStore, Op, StoreError, ZkStore};
use crate::cluster::{ClusterView, PartitionState, ReassignRequest, Reassignment, TopicInfo};
use std::collections::{BTreeMap, BTreeSet, HashSet};

/// Kafka's znode of reassignments for the controller to start.
pub(crate) const REASSIGN_PATH: &str = "/admin/reassign_partitions";

/// Where a partition's assignment goes when its target becomes `target`: its replicas (target
/// first, then those leaving) and the reassignment, `None` when no replica moves (a reordering,
/// a target equal to the original, a cancellation).
pub fn plan(
    replicas: &[i32],
    ongoing: Option<&Reassignment>,
    target: &[i32],
) -> (Vec<i32>, Option<Reassignment>) {
    let original = original(replicas, ongoing);
    let adding: Vec<i32> = target
        .iter()
        .copied()
        .filter(|b| !original.contains(b))
        .collect();
    let removing: Vec<i32> = original
        .iter()
        .copied()
        .filter(|b| !target.contains(b))
        .collect();
    let mut all = target.to_vec();
    all.extend(&removing);
    if adding.is_empty() && removing.is_empty() {
        return (all, None);
    }
    (all, Some(Reassignment { adding, removing }))
}

/// The replicas before the reassignment began.
pub fn original(replicas: &[i32], ongoing: Option<&Reassignment>) -> Vec<i32> {
    replicas
        .iter()
        .copied()
        .filter(|b| ongoing.is_none_or(|r| !r.adding.contains(b)))
        .collect()
}

/// The replicas a reassignment ends with.
pub fn target(replicas: &[i32], r: &Reassignment) -> Vec<i32> {
    replicas
        .iter()
        .copied()
        .filter(|b| !r.removing.contains(b))
        .collect()
}

/// Writes `/admin/reassign_partitions` for the controller (`NodeExists` while an earlier batch
/// is still there).
pub(super) async fn hand_over(
    store: &ZkStore,
    requests: Vec<ReassignRequest>,
) -> Result<(), StoreError> {
    let body = serde_json::to_vec(&ReassignJson {
        version: 1,
        partitions: requests
            .into_iter()
            .map(|r| ReassignPartition {
                topic: r.topic,
                partition: r.partition,
                replicas: r.target,
            })
            .collect(),
    })
    .expect("reassignment json");
    store.create(REASSIGN_PATH, &body).await
}

/// The reassignments waiting for the controller.
pub(super) async fn read_requests(store: &ZkStore) -> Result<Vec<ReassignRequest>, StoreError> {
    let Some(n) = store.get(REASSIGN_PATH).await? else {
        return Ok(Vec::new());
    };
    match serde_json::from_slice::<ReassignJson>(&n.data) {
        Ok(r) => Ok(r
            .partitions
            .into_iter()
            .map(|p| ReassignRequest {
                topic: p.topic,
                partition: p.partition,
                target: p.replicas,
            })
            .collect()),
        Err(e) => {
            tracing::warn!(error = %e, "unreadable {REASSIGN_PATH}");
            Ok(Vec::new())
        }
    }
}

/// The ongoing reassignments of a topic znode (`adding_replicas`, `removing_replicas`) of `n`
/// partitions.
pub(super) fn parse(tj: &TopicJson, n: usize) -> BTreeMap<usize, Reassignment> {
    let mut out: BTreeMap<usize, Reassignment> = BTreeMap::new();
    let lists = tj
        .adding_replicas
        .iter()
        .map(|(k, l)| (k, l, true))
        .chain(tj.removing_replicas.iter().map(|(k, l)| (k, l, false)));
    for (key, list, adding) in lists {
        let Some(p) = key.parse::<usize>().ok().filter(|p| *p < n) else {
            continue;
        };
        let r = out.entry(p).or_default();
        if adding {
            r.adding = list.clone();
        } else {
            r.removing = list.clone();
        }
    }
    out
}

/// The view's facts the decisions need about brokers.
struct Brokers<'a>(&'a ClusterView);

impl Brokers<'_> {
    fn can_lead(&self, b: i32) -> bool {
        self.0.brokers.contains_key(&b) && !self.0.shutting_down.contains(&b)
    }

    /// `state` once only `replicas` remain (ISR filtered); a new leader, epoch + 1, from them
    /// (in their order, in sync, able to lead) when the current one is not among them or cannot
    /// lead; offline (-1) when none can. `None` when no in-sync replica would remain.
    fn narrowed(
        &self,
        s: &PartitionState,
        replicas: &[i32],
        controller_epoch: i32,
    ) -> Option<PartitionState> {
        let isr: Vec<i32> = s
            .isr
            .iter()
            .copied()
            .filter(|b| replicas.contains(b))
            .collect();
        if isr.is_empty() {
            return None;
        }
        let mut n = PartitionState {
            isr,
            controller_epoch,
            ..s.clone()
        };
        if !(replicas.contains(&s.leader) && self.can_lead(s.leader)) {
            n.leader = replicas
                .iter()
                .copied()
                .find(|b| n.isr.contains(b) && self.can_lead(*b))
                .unwrap_or(-1);
            n.leader_epoch += 1;
        }
        Some(n)
    }
}

/// One topic's reassignment work: requests started, reassignments completed. `None` when
/// nothing changes.
fn topic_decision(
    view: &ClusterView,
    name: &str,
    t: &TopicInfo,
    requests: &[&ReassignRequest],
    controller_epoch: i32,
) -> Option<(String, Vec<Op>)> {
    let brokers = Brokers(view);
    let mut replicas = t.replicas.clone();
    let mut reassigning = t.reassigning.clone();
    let mut states: BTreeMap<usize, PartitionState> = BTreeMap::new();
    let state = |states: &BTreeMap<usize, PartitionState>, p: usize| {
        states.get(&p).cloned().or_else(|| t.states[p].clone())
    };
    let mut notes = Vec::new();
    for r in requests {
        let Some(p) = usize::try_from(r.partition)
            .ok()
            .filter(|p| *p < replicas.len())
        else {
            continue;
        };
        let ongoing = reassigning.get(&p);
        let goal = match &r.target {
            Some(g) => g.clone(),
            None if ongoing.is_some() => original(&replicas[p], ongoing),
            None => continue,
        };
        let unique: BTreeSet<i32> = goal.iter().copied().collect();
        if goal.is_empty() || unique.len() != goal.len() {
            tracing::warn!(
                topic = name,
                partition = p,
                ?goal,
                "reassignment refused: empty or repeated replicas"
            );
            continue;
        }
        let (all, reassignment) = plan(&replicas[p], ongoing, &goal);
        let Some(s) = state(&states, p) else { continue };
        // Replicas an earlier reassignment was adding and this one does not keep.
        if replicas[p].iter().any(|b| !all.contains(b)) {
            match brokers.narrowed(&s, &all, controller_epoch) {
                Some(n) => {
                    states.insert(p, n);
                }
                None => {
                    tracing::warn!(topic = name, partition = p, ?goal, isr = ?s.isr, "reassignment refused: no in-sync replica would remain");
                    continue;
                }
            }
        }
        notes.push(format!("{p}: {:?} -> {goal:?}", replicas[p]));
        replicas[p] = all;
        match reassignment {
            Some(r) => reassigning.insert(p, r),
            None => reassigning.remove(&p),
        };
    }
    let ongoing: Vec<usize> = reassigning.keys().copied().collect();
    for p in ongoing {
        let goal = target(&replicas[p], &reassigning[&p]);
        let Some(s) = state(&states, p) else { continue };
        if !goal.iter().all(|b| s.isr.contains(b)) {
            continue;
        }
        let Some(n) = brokers.narrowed(&s, &goal, controller_epoch) else {
            continue;
        };
        notes.push(format!(
            "{p}: reassignment to {goal:?} complete (leader {}, epoch {})",
            n.leader, n.leader_epoch
        ));
        states.insert(p, n);
        replicas[p] = goal;
        reassigning.remove(&p);
    }
    if replicas == t.replicas && reassigning == t.reassigning && states.is_empty() {
        return None;
    }
    let next = TopicInfo {
        replicas,
        reassigning,
        ..t.clone()
    };
    let mut ops = vec![Op::Set {
        path: format!("/brokers/topics/{name}"),
        data: topic_json(&next),
        version: t.version,
    }];
    for (p, s) in &states {
        let version = t.states[*p].as_ref().map_or(0, |s| s.version);
        ops.push(Op::Set {
            path: state_path(name, *p),
            data: state_json(s),
            version,
        });
    }
    Some((format!("reassignment of {name}: {}", notes.join("; ")), ops))
}

/// The controller's reassignment writes for a view: requests started, reassignments whose
/// target replicas are all in sync completed, and the request znode deleted once every request
/// in it was taken. Topics `touched` by an earlier write of the same round wait for the next.
pub fn decide(
    view: &ClusterView,
    controller_epoch: i32,
    touched: &HashSet<&str>,
) -> Vec<(String, Vec<Op>)> {
    let mut by_topic: BTreeMap<&str, Vec<&ReassignRequest>> = BTreeMap::new();
    for r in &view.reassign_requests {
        by_topic.entry(r.topic.as_str()).or_default().push(r);
    }
    let mut out = Vec::new();
    let mut deferred = false;
    for (name, t) in &view.topics {
        let requests = by_topic.remove(name.as_str()).unwrap_or_default();
        if requests.is_empty() && t.reassigning.is_empty() {
            continue;
        }
        if view.deleting.contains(name) {
            continue;
        }
        let busy = t.states.len() < t.replicas.len()
            || t.states.iter().any(Option::is_none)
            || touched.contains(format!("/brokers/topics/{name}").as_str())
            || (0..t.states.len()).any(|p| touched.contains(state_path(name, p).as_str()));
        if busy {
            deferred |= !requests.is_empty();
            continue;
        }
        out.extend(topic_decision(view, name, t, &requests, controller_epoch));
    }
    // Requests for topics that are gone are dropped with the rest.
    if !view.reassign_requests.is_empty() && !deferred {
        out.push((
            "reassignment requests taken".into(),
            vec![Op::Delete {
                path: REASSIGN_PATH.into(),
            }],
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(brokers: &[i32], replicas: &[i32], isr: &[i32], leader: i32) -> ClusterView {
        super::super::controller::one_partition_view(brokers, replicas, isr, leader)
    }

    /// Applies the decisions' writes to the view, as ZooKeeper and the next read would.
    fn apply(v: &mut ClusterView, writes: &[(String, Vec<Op>)]) {
        v.reassign_requests.clear();
        for op in writes.iter().flat_map(|(_, o)| o) {
            let Op::Set { path, data, .. } = op else {
                continue;
            };
            let t = v.topics.get_mut("t").unwrap();
            if path.ends_with("/state") {
                let s: StateJson = serde_json::from_slice(data).unwrap();
                let old = t.states[0].as_ref().unwrap().version;
                t.states[0] = Some(PartitionState {
                    leader: s.leader,
                    leader_epoch: s.leader_epoch,
                    isr: s.isr,
                    controller_epoch: s.controller_epoch,
                    version: old + 1,
                });
            } else {
                let j: TopicJson = serde_json::from_slice(data).unwrap();
                t.replicas = vec![j.partitions["0"].clone()];
                t.reassigning.clear();
                let (a, r) = (j.adding_replicas.get("0"), j.removing_replicas.get("0"));
                if a.is_some() || r.is_some() {
                    t.reassigning.insert(
                        0,
                        Reassignment {
                            adding: a.cloned().unwrap_or_default(),
                            removing: r.cloned().unwrap_or_default(),
                        },
                    );
                }
                t.version += 1;
            }
        }
    }

    fn ask(v: &mut ClusterView, target: Option<Vec<i32>>) {
        v.reassign_requests.push(ReassignRequest {
            topic: "t".into(),
            partition: 0,
            target,
        });
    }

    fn state(v: &ClusterView) -> (i32, i32, Vec<i32>) {
        let s = v.state("t", 0).unwrap();
        (s.leader, s.leader_epoch, s.isr.clone())
    }

    #[test]
    fn kafkas_replica_sets_of_a_reassignment() {
        let r = Reassignment {
            adding: vec![4],
            removing: vec![1],
        };
        assert_eq!(
            plan(&[1, 2, 3], None, &[2, 3, 4]),
            (vec![2, 3, 4, 1], Some(r.clone()))
        );
        assert_eq!(target(&[2, 3, 4, 1], &r), vec![2, 3, 4]);
        assert_eq!(original(&[2, 3, 4, 1], Some(&r)), vec![2, 3, 1]);
        // A reordering moves nothing.
        assert_eq!(plan(&[1, 2, 3], None, &[3, 1, 2]), (vec![3, 1, 2], None));
        // A new target while one runs starts from the original replicas.
        let (all, again) = plan(&[2, 3, 4, 1], Some(&r), &[1, 2, 5]);
        assert_eq!(all, vec![1, 2, 5, 3]);
        assert_eq!(
            again,
            Some(Reassignment {
                adding: vec![5],
                removing: vec![3],
            })
        );
    }

    #[test]
    fn a_reassignment_completes_once_every_target_replica_is_in_sync() {
        // [1, 2, 3] -> [2, 3, 4], leader 1.
        let mut v = view(&[1, 2, 3, 4], &[1, 2, 3], &[1, 2, 3], 1);
        ask(&mut v, Some(vec![2, 3, 4]));
        let w = decide(&v, 2, &HashSet::new());
        assert!(
            matches!(w.last().unwrap().1[0], Op::Delete { .. }),
            "request taken"
        );
        apply(&mut v, &w);
        assert_eq!(v.topics["t"].replicas[0], vec![2, 3, 4, 1]);
        assert_eq!(
            state(&v),
            (1, 4, vec![1, 2, 3]),
            "nothing moves before 4 is in sync"
        );
        assert!(decide(&v, 2, &HashSet::new()).is_empty());
        // 4 caught up: replicas become the target, 1 leaves the ISR and the leadership.
        v.topics.get_mut("t").unwrap().states[0]
            .as_mut()
            .unwrap()
            .isr = vec![1, 2, 3, 4];
        let w = decide(&v, 2, &HashSet::new());
        apply(&mut v, &w);
        assert_eq!(v.topics["t"].replicas[0], vec![2, 3, 4]);
        assert!(v.topics["t"].reassigning.is_empty());
        assert_eq!(state(&v), (2, 5, vec![2, 3, 4]));
        assert!(decide(&v, 2, &HashSet::new()).is_empty());
    }

    #[test]
    fn a_cancellation_goes_back_to_the_original_replicas() {
        let mut v = view(&[1, 2, 3, 4], &[1, 2, 3], &[1, 2, 3], 1);
        ask(&mut v, Some(vec![4, 2, 3]));
        let w = decide(&v, 2, &HashSet::new());
        apply(&mut v, &w);
        // 4 joined the ISR and leads (the leader moved there meanwhile), 1 is out of sync.
        {
            let s = v.topics.get_mut("t").unwrap().states[0].as_mut().unwrap();
            (s.leader, s.isr) = (4, vec![2, 3, 4]);
        }
        // A cancel while 1 is out of sync... 1 is not in the ISR: the target [4, 2, 3] is, so
        // it would have completed; cancel before the controller saw it.
        ask(&mut v, None);
        let w = decide(&v, 2, &HashSet::new());
        apply(&mut v, &w);
        // Kafka's original replicas: the current ones minus those being added, in their order.
        assert_eq!(v.topics["t"].replicas[0], vec![2, 3, 1]);
        assert!(v.topics["t"].reassigning.is_empty());
        assert_eq!(state(&v), (2, 5, vec![2, 3]), "4 leaves; 2 leads");
        // Cancelling what is not running does nothing (the handler answers
        // NO_REASSIGNMENT_IN_PROGRESS).
        ask(&mut v, None);
        let w = decide(&v, 2, &HashSet::new());
        assert_eq!(w.len(), 1, "only the request znode goes: {w:?}");
    }

    #[test]
    fn a_touched_topic_keeps_its_request_for_the_next_round() {
        let mut v = view(&[1, 2, 3, 4], &[1, 2, 3], &[1, 2, 3], 1);
        ask(&mut v, Some(vec![2, 3, 4]));
        let path = state_path("t", 0);
        let touched: HashSet<&str> = [path.as_str()].into();
        assert!(decide(&v, 2, &touched).is_empty());
        // The only in-sync replica leaving with nothing else in sync is refused.
        let mut v = view(&[1, 2, 3, 4], &[1, 2, 3], &[1], 1);
        ask(&mut v, Some(vec![2, 3, 4]));
        let w = decide(&v, 2, &HashSet::new());
        apply(&mut v, &w);
        assert_eq!(state(&v), (1, 4, vec![1]));
        assert_eq!(v.topics["t"].replicas[0], vec![2, 3, 4, 1]);
    }
}
