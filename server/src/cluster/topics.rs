//! Topics in a cluster: assignment, creation and deletion through ZooKeeper. (The broker applies
//! each new view to itself in `broker::reconcile`.)

use super::{Cluster, ClusterView, Request, TopicInfo};
use crate::error_code as ec;
use ringlet_engine::runtime::io;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Replica assignment: brokers ordered so that racks alternate, then each partition's replicas
/// are consecutive brokers of that order, starting one further for each partition (Kafka's
/// rack-aware round robin, simplified).
pub fn assign(
    view: &ClusterView,
    name: &str,
    partitions: i32,
    rf: i16,
) -> Result<Vec<Vec<i32>>, (i16, String)> {
    let live: Vec<&super::BrokerInfo> = view
        .brokers
        .values()
        .filter(|b| !view.shutting_down.contains(&b.id))
        .collect();
    let rf = usize::try_from(rf).unwrap_or(0);
    if rf == 0 || rf > live.len() {
        return Err((
            ec::INVALID_REPLICATION_FACTOR,
            format!(
                "replication factor {rf} is larger than the {} available brokers",
                live.len()
            ),
        ));
    }
    let mut by_rack: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for b in &live {
        by_rack
            .entry(b.rack.as_deref().unwrap_or(""))
            .or_default()
            .push(b.id);
    }
    let mut order = Vec::with_capacity(live.len());
    let mut i = 0;
    while order.len() < live.len() {
        for ids in by_rack.values() {
            if let Some(&b) = ids.get(i) {
                order.push(b);
            }
        }
        i += 1;
    }
    let n = order.len();
    let start = crc32c::crc32c(name.as_bytes()) as usize % n;
    Ok((0..partitions as usize)
        .map(|p| (0..rf).map(|r| order[(start + p + r) % n]).collect())
        .collect())
}

/// Waits (up to 15 s) until the topic has `count` partitions, each with a leader.
async fn all_led(cluster: &Cluster, name: &str, count: i32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(15);
    cluster
        .wait_for_view(deadline, |v| {
            v.topics.get(name).is_some_and(|t| {
                t.states.len() >= count.max(1) as usize
                    && t.states
                        .iter()
                        .all(|s| s.as_ref().is_some_and(|s| s.leader >= 0))
            })
        })
        .await
}

/// CreateTopics in a cluster: writes the assignment, then waits until the controller has given
/// every partition a leader.
pub async fn create(
    cluster: &Arc<Cluster>,
    name: &str,
    partitions: i32,
    rf: i16,
    manual: Option<Vec<Vec<i32>>>,
    configs: BTreeMap<String, String>,
    validate_only: bool,
) -> Result<(), (i16, String)> {
    let view = cluster.view();
    if !view.loaded {
        return Err((
            ec::NOT_CONTROLLER,
            "this broker has no ZooKeeper session yet".into(),
        ));
    }
    if view.topics.contains_key(name) {
        return Err((
            ec::TOPIC_ALREADY_EXISTS,
            format!("topic '{name}' already exists"),
        ));
    }
    // A manual assignment was validated against the registered brokers (Kafka's rule: a
    // registered broker that is shutting down may still be named).
    let replicas = match manual {
        Some(r) => r,
        None => assign(&view, name, partitions, rf)?,
    };
    if let Some(min) = configs.get("min.insync.replicas") {
        if min.parse::<usize>().is_ok_and(|m| m > rf as usize) {
            tracing::warn!(
                topic = name,
                min,
                rf,
                "min.insync.replicas exceeds the replication factor: acks=all will always fail"
            );
        }
    }
    if validate_only {
        return Ok(());
    }
    // The controller's id is written to ZooKeeper, so every broker gives the same one.
    let id = crate::topic_id::new();
    let info = TopicInfo {
        id,
        replicas,
        configs,
        states: Vec::new(),
        reassigning: Default::default(),
        version: 0,
    };
    let (tx, rx) = futures_channel::oneshot::channel();
    cluster
        .request(Request::CreateTopic {
            topic: name.to_string(),
            info,
            reply: tx,
        })
        .map_err(|m| (ec::UNKNOWN_SERVER_ERROR, m))?;
    rx.await
        .map_err(|_| (ec::UNKNOWN_SERVER_ERROR, "coordination thread gone".into()))??;
    // The controller creates the partition states; the reconcilers open the logs.
    if !all_led(cluster, name, partitions).await {
        return Err((
            ec::REQUEST_TIMED_OUT,
            format!("topic '{name}' was created but its partitions have no leader yet"),
        ));
    }
    // Give the leaders' reconcilers a moment so the first produce finds them leading.
    io::sleep(Duration::from_millis(60)).await;
    tracing::info!(
        topic = name,
        partitions,
        replication_factor = rf,
        "created topic in the cluster"
    );
    Ok(())
}

/// CreatePartitions in a cluster: the new partitions placed as creation places them (rack-aware
/// round robin), written to the topic's assignment; waits until the controller has given each a
/// leader.
pub async fn add_partitions(
    cluster: &Arc<Cluster>,
    name: &str,
    count: i32,
    manual: Option<Vec<Vec<i32>>>,
    validate_only: bool,
) -> Result<(), (i16, String)> {
    let view = cluster.view();
    let Some(t) = view
        .topics
        .get(name)
        .filter(|_| !view.deleting.contains(name))
    else {
        return Err((
            ec::UNKNOWN_TOPIC_OR_PARTITION,
            format!("topic '{name}' does not exist"),
        ));
    };
    let existing = t.replicas.len() as i32;
    if count <= existing || count > 100_000 {
        return Err((
            ec::INVALID_PARTITIONS,
            format!("topic '{name}' has {existing} partitions; the new count {count} must be larger (and at most 100000)"),
        ));
    }
    let rf = t.replicas.first().map_or(1, |r| r.len()) as i16;
    let added = match manual {
        Some(m) => {
            if m.len() as i32 != count - existing || m.iter().any(|r| r.len() != rf as usize) {
                return Err((
                    ec::INVALID_REPLICA_ASSIGNMENT,
                    format!(
                        "the assignment must name {} new partitions of {rf} replicas",
                        count - existing
                    ),
                ));
            }
            m
        }
        None => assign(&view, name, count, rf)?.split_off(existing as usize),
    };
    if validate_only {
        return Ok(());
    }
    let mut replicas = t.replicas.clone();
    replicas.extend(added);
    let (tx, rx) = futures_channel::oneshot::channel();
    cluster
        .request(Request::AddPartitions {
            topic: name.to_string(),
            replicas,
            reply: tx,
        })
        .map_err(|m| (ec::UNKNOWN_SERVER_ERROR, m))?;
    rx.await
        .map_err(|_| (ec::UNKNOWN_SERVER_ERROR, "coordination thread gone".into()))??;
    if !all_led(cluster, name, count).await {
        return Err((
            ec::REQUEST_TIMED_OUT,
            format!("partitions were added to '{name}' but not all have a leader yet"),
        ));
    }
    io::sleep(Duration::from_millis(60)).await;
    tracing::info!(
        topic = name,
        partitions = count,
        "added partitions in the cluster"
    );
    Ok(())
}

pub async fn delete(cluster: &Arc<Cluster>, name: &str) -> Result<(), (i16, String)> {
    if !cluster.view().topics.contains_key(name) {
        return Err((
            ec::UNKNOWN_TOPIC_OR_PARTITION,
            format!("topic '{name}' does not exist"),
        ));
    }
    let (tx, rx) = futures_channel::oneshot::channel();
    cluster
        .request(Request::DeleteTopic {
            topic: name.to_string(),
            reply: tx,
        })
        .map_err(|m| (ec::UNKNOWN_SERVER_ERROR, m))?;
    rx.await
        .map_err(|_| {
            (
                ec::UNKNOWN_SERVER_ERROR,
                "coordination thread gone".to_string(),
            )
        })?
        .map_err(|m| (ec::UNKNOWN_SERVER_ERROR, m))?;
    let deadline = Instant::now() + Duration::from_secs(15);
    if !cluster
        .wait_for_view(deadline, |v| !v.topics.contains_key(name))
        .await
    {
        return Err((
            ec::REQUEST_TIMED_OUT,
            format!("topic '{name}' is marked for deletion; the controller has not finished"),
        ));
    }
    Ok(())
}

/// Controlled shutdown (from the main thread, before the shards stop): asks the controller to
/// move leadership away and waits until this broker leads no partition that another in-sync
/// replica could lead. Returns whether it got there.
pub fn controlled_shutdown(cluster: &Cluster) -> bool {
    let cfg = &cluster.config;
    if !cfg.controlled_shutdown_enable || cluster.is_fenced() {
        return false;
    }
    let me = cluster.broker_id;
    let still_leading = |v: &ClusterView| {
        v.topics
            .values()
            .flat_map(|t| t.states.iter().flatten())
            .filter(|s| {
                s.leader == me && s.isr.iter().any(|b| *b != me && v.brokers.contains_key(b))
            })
            .count()
    };
    for attempt in 0..=cfg.controlled_shutdown_max_retries {
        let (tx, mut rx) = futures_channel::oneshot::channel();
        if cluster
            .request(Request::ControlledShutdown { reply: tx })
            .is_err()
        {
            return false;
        }
        let deadline = Instant::now()
            + Duration::from_millis(cfg.controlled_shutdown_retry_backoff_ms.max(1000));
        loop {
            let left = still_leading(&cluster.view());
            let asked = matches!(rx.try_recv(), Ok(Some(Ok(()))) | Err(_));
            if left == 0 && asked {
                tracing::info!(attempt, "controlled shutdown: leadership moved away");
                return true;
            }
            if Instant::now() > deadline {
                tracing::warn!(
                    attempt,
                    still_leading = left,
                    "controlled shutdown: partitions still led here"
                );
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::BrokerInfo;

    fn view(racks: &[(i32, &str)]) -> ClusterView {
        let mut v = ClusterView::default();
        for &(id, rack) in racks {
            v.brokers.insert(
                id,
                BrokerInfo {
                    id,
                    endpoints: vec![],
                    rack: Some(rack.to_string()),
                    epoch: 1,
                },
            );
        }
        v
    }

    #[test]
    fn replicas_spread_over_brokers_and_racks() {
        // Four brokers on two racks: every partition's two replicas sit on different racks, and
        // leaders (first replicas) rotate over every broker.
        let v = view(&[(1, "a"), (2, "a"), (3, "b"), (4, "b")]);
        let a = assign(&v, "t", 8, 2).unwrap();
        let rack = |b: i32| v.brokers[&b].rack.clone().unwrap();
        for r in &a {
            assert_eq!(r.len(), 2);
            assert_ne!(rack(r[0]), rack(r[1]), "{a:?}");
        }
        let leaders: std::collections::BTreeSet<i32> = a.iter().map(|r| r[0]).collect();
        assert_eq!(leaders.len(), 4);
        // No replica twice in a partition, and never more replicas than brokers.
        let a = assign(&v, "u", 5, 4).unwrap();
        for r in &a {
            let set: std::collections::BTreeSet<_> = r.iter().collect();
            assert_eq!(set.len(), 4);
        }
        assert_eq!(
            assign(&v, "t", 1, 5).unwrap_err().0,
            ec::INVALID_REPLICATION_FACTOR
        );
        // A broker in controlled shutdown gets no new replicas.
        let mut v2 = v.clone();
        v2.shutting_down.insert(4);
        assert!(assign(&v2, "t", 6, 3)
            .unwrap()
            .iter()
            .all(|r| !r.contains(&4)));
    }
}
