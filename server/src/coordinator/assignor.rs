//! The server-side assignors of KIP-848 consumer groups (`group.consumer.assignors`): `uniform`
//! (Kafka's default: every partition of the subscribed topics spread evenly over the members
//! subscribed to its topic, keeping each member's current partitions where the balance allows,
//! and placing the others on a member in one of the partition's replicas' racks where one is
//! under its quota) and `range` (per topic, contiguous ranges in member order, as the classic
//! RangeAssignor).

use std::collections::{BTreeMap, BTreeSet};

/// Partitions by topic name.
pub type Parts = BTreeMap<String, BTreeSet<i32>>;

/// What an assignor sees of one member: its subscribed topics (existing ones only) and what it
/// is assigned now.
pub struct MemberSpec<'a> {
    pub topics: &'a BTreeSet<String>,
    pub current: &'a Parts,
    /// The member's `client.rack`.
    pub rack: Option<&'a str>,
}

/// The racks of each partition's replicas, by topic (absent: no rack known).
pub type Racks = BTreeMap<String, Vec<BTreeSet<String>>>;

pub use crate::config::canonical_assignor as canonical;

/// The target assignment: member id -> partitions. `layout`: partition count per topic.
pub fn assign(
    assignor: &str,
    members: &BTreeMap<String, MemberSpec<'_>>,
    layout: &BTreeMap<String, i32>,
    racks: &Racks,
) -> BTreeMap<String, Parts> {
    match assignor {
        "range" => range(members, layout),
        _ => uniform(members, layout, racks),
    }
}

fn range(
    members: &BTreeMap<String, MemberSpec<'_>>,
    layout: &BTreeMap<String, i32>,
) -> BTreeMap<String, Parts> {
    let mut out: BTreeMap<String, Parts> =
        members.keys().map(|m| (m.clone(), Parts::new())).collect();
    for (topic, &n) in layout {
        let subs: Vec<&String> = members
            .iter()
            .filter(|(_, s)| s.topics.contains(topic))
            .map(|(id, _)| id)
            .collect();
        if subs.is_empty() {
            continue;
        }
        let (each, extra) = (n as usize / subs.len(), n as usize % subs.len());
        let mut next = 0i32;
        for (i, m) in subs.iter().enumerate() {
            let count = each + usize::from(i < extra);
            let parts: BTreeSet<i32> = (next..next + count as i32).collect();
            next += count as i32;
            if !parts.is_empty() {
                out.get_mut(*m)
                    .expect("member")
                    .insert(topic.clone(), parts);
            }
        }
    }
    out
}

/// Balanced and sticky, topic by topic over the members subscribed to it: each member may keep
/// up to its quota (partitions / members, the first `extra` members one more) of what it has, and
/// the rest go to the members with the fewest partitions.
fn uniform(
    members: &BTreeMap<String, MemberSpec<'_>>,
    layout: &BTreeMap<String, i32>,
    racks: &Racks,
) -> BTreeMap<String, Parts> {
    let mut out: BTreeMap<String, Parts> =
        members.keys().map(|m| (m.clone(), Parts::new())).collect();
    // Totals across topics, so that members of several topics stay balanced overall.
    let mut load: BTreeMap<&String, usize> = members.keys().map(|m| (m, 0)).collect();
    for (topic, &n) in layout {
        let subs: Vec<&String> = members
            .iter()
            .filter(|(_, s)| s.topics.contains(topic))
            .map(|(id, _)| id)
            .collect();
        if subs.is_empty() || n <= 0 {
            continue;
        }
        let quota_low = n as usize / subs.len();
        let extra = n as usize % subs.len();
        let mut taken: BTreeSet<i32> = BTreeSet::new();
        let mut kept: BTreeMap<&String, BTreeSet<i32>> = BTreeMap::new();
        let mut extras_used = 0;
        // A member in a rack none of the partition's replicas is in (both known) is far from it.
        let far = |m: &String, p: i32| {
            let replica_racks = racks.get(topic).and_then(|r| r.get(p as usize));
            match (members[m].rack, replica_racks) {
                (Some(r), Some(rs)) if !rs.is_empty() => !rs.contains(r),
                _ => false,
            }
        };
        // What a member may keep: its current partitions, except those far from it (Kafka's
        // rack-aware stickiness).
        let keepable = |m: &String| -> Vec<i32> {
            members[m]
                .current
                .get(topic)
                .map(|ps| {
                    ps.iter()
                        .copied()
                        .filter(|&p| p < n && !far(m, p))
                        .collect()
                })
                .unwrap_or_default()
        };
        // Keep current partitions up to the quota (members with more current partitions first,
        // so the extra slots go to those who already hold them).
        let mut by_current: Vec<&&String> = subs.iter().collect();
        by_current.sort_by_key(|m| std::cmp::Reverse(keepable(m).len()));
        for m in by_current {
            let cur: Vec<i32> = keepable(m);
            let quota = if cur.len() > quota_low && extras_used < extra {
                extras_used += 1;
                quota_low + 1
            } else {
                quota_low
            };
            let keep: BTreeSet<i32> = cur.into_iter().take(quota).collect();
            taken.extend(&keep);
            kept.insert(*m, keep);
        }
        // The rest, one at a time, to the least loaded member still under its quota, one in a
        // rack of the partition's replicas first (fetching from a replica in its own rack).
        for p in (0..n).filter(|p| !taken.contains(p)) {
            let target = subs
                .iter()
                .filter(|m| {
                    let have = kept[**m].len();
                    have < quota_low || (have == quota_low && extras_used < extra)
                })
                .min_by_key(|m| (far(m, p), kept[**m].len(), load[**m]))
                .copied();
            let Some(m) = target.or_else(|| subs.iter().min_by_key(|m| kept[**m].len()).copied())
            else {
                continue;
            };
            if kept[m].len() == quota_low {
                extras_used += 1;
            }
            kept.get_mut(m).expect("member").insert(p);
        }
        for (m, parts) in kept {
            *load.get_mut(m).expect("member") += parts.len();
            if !parts.is_empty() {
                out.get_mut(m).expect("member").insert(topic.clone(), parts);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(topics: &[&str]) -> BTreeSet<String> {
        topics.iter().map(|t| t.to_string()).collect()
    }

    #[test]
    fn uniform_is_balanced_and_sticky() {
        let t = spec(&["a"]);
        let none = Parts::new();
        let layout: BTreeMap<String, i32> = [("a".to_string(), 6)].into();
        let mut members = BTreeMap::new();
        members.insert(
            "m1".to_string(),
            MemberSpec {
                topics: &t,
                current: &none,
                rack: None,
            },
        );
        let first = assign("uniform", &members, &layout, &Racks::new());
        assert_eq!(first["m1"]["a"].len(), 6);
        // A second member takes half, and m1 keeps the other half of what it had.
        let m1_cur = first["m1"].clone();
        let mut members = BTreeMap::new();
        members.insert(
            "m1".to_string(),
            MemberSpec {
                topics: &t,
                current: &m1_cur,
                rack: None,
            },
        );
        members.insert(
            "m2".to_string(),
            MemberSpec {
                topics: &t,
                current: &none,
                rack: None,
            },
        );
        let second = assign("uniform", &members, &layout, &Racks::new());
        assert_eq!(second["m1"]["a"].len(), 3);
        assert_eq!(second["m2"]["a"].len(), 3);
        assert!(second["m1"]["a"].is_subset(&m1_cur["a"]));
        assert!(second["m1"]["a"].is_disjoint(&second["m2"]["a"]));
        // Seven partitions over three members: 3/2/2, every partition once.
        let layout: BTreeMap<String, i32> = [("a".to_string(), 7)].into();
        let mut members = BTreeMap::new();
        for m in ["x", "y", "z"] {
            members.insert(
                m.to_string(),
                MemberSpec {
                    topics: &t,
                    current: &none,
                    rack: None,
                },
            );
        }
        let third = assign("uniform", &members, &layout, &Racks::new());
        let mut sizes: Vec<usize> = third.values().map(|p| p["a"].len()).collect();
        sizes.sort();
        assert_eq!(sizes, vec![2, 2, 3]);
        let all: BTreeSet<i32> = third
            .values()
            .flat_map(|p| p["a"].iter().copied())
            .collect();
        assert_eq!(all.len(), 7);
    }

    #[test]
    fn range_gives_contiguous_ranges_per_topic() {
        let t = spec(&["a", "b"]);
        let only_a = spec(&["a"]);
        let none = Parts::new();
        let layout: BTreeMap<String, i32> = [("a".to_string(), 5), ("b".to_string(), 2)].into();
        let mut members = BTreeMap::new();
        members.insert(
            "m1".to_string(),
            MemberSpec {
                topics: &t,
                current: &none,
                rack: None,
            },
        );
        members.insert(
            "m2".to_string(),
            MemberSpec {
                topics: &only_a,
                current: &none,
                rack: None,
            },
        );
        let out = assign("range", &members, &layout, &Racks::new());
        assert_eq!(out["m1"]["a"], [0, 1, 2].into());
        assert_eq!(out["m2"]["a"], [3, 4].into());
        assert_eq!(out["m1"]["b"], [0, 1].into());
        assert!(!out["m2"].contains_key("b"));
    }

    #[test]
    fn uniform_places_partitions_in_their_replicas_racks() {
        let t = spec(&["a"]);
        let none = Parts::new();
        let layout: BTreeMap<String, i32> = [("a".to_string(), 6)].into();
        // Partitions 0-2 on rack x, 3-5 on rack y.
        let racks: Racks = [(
            "a".to_string(),
            (0..6)
                .map(|p| [if p < 3 { "x" } else { "y" }.to_string()].into())
                .collect(),
        )]
        .into();
        let mut members = BTreeMap::new();
        members.insert(
            "m1".to_string(),
            MemberSpec {
                topics: &t,
                current: &none,
                rack: Some("y"),
            },
        );
        members.insert(
            "m2".to_string(),
            MemberSpec {
                topics: &t,
                current: &none,
                rack: Some("x"),
            },
        );
        let out = assign("uniform", &members, &layout, &racks);
        assert_eq!(out["m1"]["a"], [3, 4, 5].into());
        assert_eq!(out["m2"]["a"], [0, 1, 2].into());
        // Balance first: with one rack only, the quota still splits them 3/3.
        let racks_one: Racks = [(
            "a".to_string(),
            (0..6).map(|_| ["x".to_string()].into()).collect(),
        )]
        .into();
        let out = assign("uniform", &members, &layout, &racks_one);
        assert_eq!(out["m1"]["a"].len(), 3);
        assert_eq!(out["m2"]["a"].len(), 3);
    }
}
