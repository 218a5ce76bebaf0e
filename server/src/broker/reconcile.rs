//! The broker's side of a cluster: every new cluster view applied to this broker (topics adopted
//! or dropped, partition roles on their owning shards), and every leader fenced while the
//! ZooKeeper session is gone. The `cluster` module knows the view; this one knows the broker.

use super::Broker;
use crate::cluster::{replica, Cluster, PartitionState, TopicInfo};
use crate::error_code as ec;
use ringlet_engine::runtime;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

fn min_isr(cluster: &Cluster, t: &TopicInfo) -> usize {
    t.configs
        .get("min.insync.replicas")
        .and_then(|v| v.parse().ok())
        .unwrap_or(cluster.config.min_insync_replicas as usize)
}

/// On shard 0: applies every new cluster view to this broker (topics adopted or dropped,
/// partition roles on their owning shards), and fences every leader while the ZooKeeper
/// session is gone.
pub async fn reconcile_loop(broker: Arc<Broker>) {
    let Some(cluster) = broker.cluster.clone() else {
        return;
    };
    let me = broker.config.broker_id;
    let mut seen = u64::MAX;
    let mut was_fenced = false;
    type Applied = (Option<PartitionState>, bool, usize, Vec<i32>);
    type Key = (String, i32);
    // What `replica::apply` takes: topic, partition, state, replicas, min.insync.replicas.
    type Role = (String, i32, Option<PartitionState>, Vec<i32>, usize);
    type Change = (Role, (Key, Applied));
    let mut applied: HashMap<Key, Applied> = HashMap::new();
    use std::sync::atomic::Ordering::Acquire;
    while !broker.shutting_down.load(Acquire) {
        // Wait for a new view, a fencing change, or shutdown.
        let changed = cluster.changed.wait_until(|| {
            cluster.generation.load(Acquire) != seen || cluster.is_fenced() != was_fenced
        });
        let stop = broker
            .shutdown_begun
            .wait_until(|| broker.shutting_down.load(Acquire));
        futures_util::future::select(std::pin::pin!(changed), std::pin::pin!(stop)).await;
        if broker.shutting_down.load(Acquire) {
            break;
        }
        let generation = cluster
            .generation
            .load(std::sync::atomic::Ordering::Acquire);
        let fenced = cluster.is_fenced();
        if generation == seen && fenced == was_fenced {
            continue;
        }
        seen = generation;
        if fenced && !was_fenced {
            for shard in 0..runtime::shard_count() {
                let _ = runtime::call_on(shard, || async { replica::fence_all() }).await;
            }
            applied.clear();
        }
        was_fenced = fenced;
        let view = cluster.view();
        if !view.loaded || fenced {
            continue;
        }
        // Dynamic broker configs first: topics opened below take the defaults in force.
        broker.apply_dynamic(broker.dynamic_from_view(&view)).await;
        let mut pending: BTreeMap<usize, Vec<Change>> = BTreeMap::new();
        broker.quotas.set(crate::quota::from_stored(&view.quotas));
        // A cluster's ACLs and SCRAM credentials are ZooKeeper's, the same on every broker.
        broker.authorizer.replace(&view.acls);
        broker.credentials.replace(&view.scram);
        for (name, t) in &view.topics {
            if view.deleting.contains(name) {
                continue;
            }
            let hosted = t.replicas.iter().any(|r| r.contains(&me));
            if !hosted {
                continue;
            }
            if let Err((code, msg)) = broker.adopt_topic(name, t).await {
                tracing::error!(
                    topic = name,
                    error = ec::name(code),
                    msg,
                    "cannot open the topic's local replicas"
                );
                continue;
            }
            let min_isr = min_isr(&cluster, t);
            for (p, (replicas, state)) in t.replicas.iter().zip(&t.states).enumerate() {
                let k = (name.clone(), p as i32);
                if !replicas.contains(&me) {
                    // Reassigned away (or never here): applied afresh if it comes back.
                    applied.remove(&k);
                    continue;
                }
                // A changed min.insync.replicas (AlterConfigs) or replica list (reassignment) is
                // applied like a new state.
                let now = (state.clone(), fenced, min_isr, replicas.clone());
                if applied.get(&k) == Some(&now) {
                    continue;
                }
                let Some(owner) = broker.owner(name, p as i32) else {
                    continue;
                };
                let role = (
                    name.clone(),
                    p as i32,
                    state.clone(),
                    replicas.clone(),
                    min_isr,
                );
                pending.entry(owner).or_default().push((role, (k, now)));
            }
        }
        // One cross-shard call per shard with every partition whose role changed there (a
        // broker coming back to 10,000 partitions would otherwise wait on 10,000 round trips).
        for (owner, roles) in std::mem::take(&mut pending) {
            let (todo, states): (Vec<_>, Vec<_>) = roles.into_iter().unzip();
            let c = cluster.clone();
            let done = runtime::call_on(owner, move || async move {
                for (topic, p, state, replicas, min_isr) in todo {
                    replica::apply(&c, &topic, p, state, replicas, min_isr, fenced).await;
                }
            })
            .await;
            if done.is_ok() {
                applied.extend(states);
            }
        }
        // Topics deleted in the cluster (or no longer hosted here) go.
        let local: Vec<String> = broker
            .metadata
            .read()
            .expect("metadata lock")
            .topics
            .keys()
            .cloned()
            .collect();
        for name in local {
            let keep = view
                .topics
                .get(&name)
                .is_some_and(|t| t.replicas.iter().any(|r| r.contains(&me)));
            if !keep {
                tracing::info!(topic = name, "topic is gone from the cluster (or from this broker): deleting the local replicas");
                applied.retain(|k, _| k.0 != name);
                if let Err((_, msg)) = broker.drop_local_topic(&name).await {
                    tracing::warn!(topic = name, msg, "local delete failed");
                }
            }
        }
    }
}
