//! Reading the cluster from ZooKeeper: the whole view when a session starts (and, as a safety
//! net, every [`FULL_READ_EVERY`]), otherwise only the parts that the watch's changed paths name:
//! one partition's state, one topic, the broker list... A change to one partition of a 10,000
//! partition cluster costs one read, not 10,000.

use super::configs::read_quotas;
use super::json::*;
use super::{reassign, ELECTION_PATH, UNCLEAN_ELECTION_PATH};
use crate::cluster::store::{MetadataStore, StoreError, ZkStore};
use crate::cluster::{BrokerInfo, ClusterView, PartitionState, TopicInfo};
use futures_util::future::join_all;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// How often the whole view is read again even when the watch reported nothing it missed.
pub(super) const FULL_READ_EVERY: Duration = Duration::from_secs(60);

/// A part of the view that a changed path makes stale.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Part {
    Everything,
    Brokers,
    Controller,
    TopicList,
    Topic(String),
    State(String, usize),
    TopicConfigs(String),
    ShuttingDown,
    Deleting,
    Reassign,
    Election,
    BrokerConfigs,
    GroupConfigs,
    Quotas,
    Acls,
}

/// What a changed path (relative to the chroot) makes stale; `None` for znodes the view does not
/// hold. Unknown places ask for everything.
pub(super) fn part_of(path: &str) -> Option<Part> {
    let s: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let own = |t: &&str| t.to_string();
    Some(match s.as_slice() {
        [""] => Part::Everything,
        ["brokers"] | ["brokers", "seqid", ..] | ["admin"] | ["config"] => return None,
        ["config", "changes", ..] | ["config", "topics"] => return None,
        ["cluster", ..] | ["consumers", ..] | ["isr_change_notification", ..] => return None,
        ["log_dir_event_notification", ..] | ["latest_producer_id_block", ..] => return None,
        ["kafka-acl-changes", ..] | ["kafka-acl-extended-changes", ..] => return None,
        ["kafka-acl", ..] | ["kafka-acl-extended", ..] => Part::Acls,
        ["brokers", "ids", ..] => Part::Brokers,
        ["controller"] | ["controller_epoch"] => Part::Controller,
        ["brokers", "topics"] => Part::TopicList,
        ["brokers", "topics", t, "partitions", p, "state"] => match p.parse() {
            Ok(p) => Part::State(own(t), p),
            Err(_) => Part::Topic(own(t)),
        },
        ["brokers", "topics", t, ..] => Part::Topic(own(t)),
        ["config", "topics", t] => Part::TopicConfigs(own(t)),
        ["config", "brokers", ..] => Part::BrokerConfigs,
        ["config", "groups", ..] => Part::GroupConfigs,
        ["config", "users" | "clients" | "ips", ..] => Part::Quotas,
        ["brokers", "shutting_down", ..] => Part::ShuttingDown,
        ["admin", "delete_topics", ..] => Part::Deleting,
        ["admin", "reassign_partitions"] => Part::Reassign,
        ["admin", "preferred_replica_election" | "unclean_leader_election"] => Part::Election,
        _ => Part::Everything,
    })
}

/// Reads the whole cluster (brokers, controller, topics, partition states, configs).
pub(super) async fn read_view(store: &ZkStore) -> Result<ClusterView, StoreError> {
    let mut v = ClusterView {
        loaded: true,
        controller: -1,
        ..Default::default()
    };
    v.brokers = read_brokers(store).await?;
    read_controller(store, &mut v).await?;
    for t in store.children("/brokers/topics").await? {
        if let Some(info) = read_topic(store, &t).await? {
            v.topics.insert(t, info);
        }
    }
    for p in [
        Part::ShuttingDown,
        Part::Deleting,
        Part::Reassign,
        Part::Election,
        Part::BrokerConfigs,
        Part::GroupConfigs,
        Part::Quotas,
        Part::Acls,
    ] {
        read_part(store, &mut v, &p).await?;
    }
    Ok(v)
}

/// Re-reads the parts of `v` that `stale` names.
pub(super) async fn refresh(
    store: &ZkStore,
    v: &mut ClusterView,
    stale: &BTreeSet<Part>,
) -> Result<(), StoreError> {
    if stale.is_empty() {
        return Ok(());
    }
    tracing::debug!(parts = ?stale, "re-reading what changed in ZooKeeper");
    if stale.contains(&Part::Everything) {
        *v = read_view(store).await?;
        return Ok(());
    }
    // A topic re-read whole covers its states and configs.
    let whole: BTreeSet<&str> = stale
        .iter()
        .filter_map(|p| match p {
            Part::Topic(t) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    // Partition states (most of a burst: ISR changes) are read pipelined.
    let states: Vec<(&str, usize)> = stale
        .iter()
        .filter_map(|p| match p {
            Part::State(t, p) if !whole.contains(t.as_str()) => Some((t.as_str(), *p)),
            _ => None,
        })
        .collect();
    for chunk in states.chunks(PIPELINED_READS) {
        let read = join_all(chunk.iter().map(|(t, p)| read_state(store, t, *p))).await;
        for ((t, p), s) in chunk.iter().zip(read) {
            let s = s?;
            if let Some(slot) = v.topics.get_mut(*t).and_then(|i| i.states.get_mut(*p)) {
                *slot = s;
            }
        }
    }
    for p in stale {
        match p {
            Part::State(..) => {}
            Part::TopicConfigs(t) if whole.contains(t.as_str()) => {}
            p => read_part(store, v, p).await?,
        }
    }
    Ok(())
}

/// How many znode reads are in flight on the session at once.
const PIPELINED_READS: usize = 256;

/// Re-reads one part (never [`Part::Everything`]: [`refresh`] reads the whole view for it).
async fn read_part(store: &ZkStore, v: &mut ClusterView, part: &Part) -> Result<(), StoreError> {
    match part {
        Part::Everything => {}
        Part::Brokers => v.brokers = read_brokers(store).await?,
        Part::Controller => read_controller(store, v).await?,
        Part::TopicList => {
            let now: BTreeSet<String> = store
                .children("/brokers/topics")
                .await?
                .into_iter()
                .collect();
            v.topics.retain(|t, _| now.contains(t));
            let new: Vec<String> = now
                .into_iter()
                .filter(|t| !v.topics.contains_key(t))
                .collect();
            for t in new {
                if let Some(info) = read_topic(store, &t).await? {
                    v.topics.insert(t, info);
                }
            }
        }
        Part::Topic(t) => match read_topic(store, t).await? {
            Some(info) => {
                v.topics.insert(t.clone(), info);
            }
            None => {
                v.topics.remove(t);
            }
        },
        Part::State(t, p) => {
            let s = read_state(store, t, *p).await?;
            if let Some(slot) = v.topics.get_mut(t).and_then(|i| i.states.get_mut(*p)) {
                *slot = s;
            }
        }
        Part::TopicConfigs(t) => {
            if v.topics.contains_key(t) {
                // The creation configs live in the assignment node: re-read the topic.
                if let Some(info) = read_topic(store, t).await? {
                    v.topics.insert(t.clone(), info);
                }
            }
        }
        Part::ShuttingDown => {
            v.shutting_down = store
                .children("/brokers/shutting_down")
                .await?
                .iter()
                .filter_map(|c| c.parse().ok())
                .collect();
        }
        Part::Deleting => {
            v.deleting = store
                .children("/admin/delete_topics")
                .await?
                .into_iter()
                .collect();
        }
        Part::Reassign => v.reassign_requests = reassign::read_requests(store).await?,
        Part::Election => {
            v.preferred_elections = read_election(store, ELECTION_PATH).await?;
            v.unclean_elections = read_election(store, UNCLEAN_ELECTION_PATH).await?;
        }
        Part::BrokerConfigs => v.broker_configs = read_configs(store, "brokers").await?,
        Part::GroupConfigs => v.group_configs = read_configs(store, "groups").await?,
        Part::Quotas => (v.quotas, v.scram) = read_quotas(store).await?,
        Part::Acls => v.acls = super::security::read_acls(store).await?,
    }
    Ok(())
}

/// The partitions a pending election znode names (none when it is absent or unreadable).
async fn read_election(store: &ZkStore, path: &str) -> Result<BTreeSet<(String, i32)>, StoreError> {
    Ok(match store.get(path).await? {
        Some(n) => serde_json::from_slice::<ElectionJson>(&n.data)
            .map(|e| {
                e.partitions
                    .into_iter()
                    .map(|p| (p.topic, p.partition))
                    .collect()
            })
            .unwrap_or_default(),
        None => Default::default(),
    })
}

async fn read_brokers(store: &ZkStore) -> Result<BTreeMap<i32, BrokerInfo>, StoreError> {
    let mut out = BTreeMap::new();
    for child in store.children("/brokers/ids").await? {
        let Ok(id) = child.parse::<i32>() else {
            continue;
        };
        let Some(node) = store.get(&format!("/brokers/ids/{child}")).await? else {
            continue;
        };
        let Ok(reg) = serde_json::from_slice::<RegistrationJson>(&node.data) else {
            tracing::warn!(broker = id, "unreadable broker registration");
            continue;
        };
        out.insert(
            id,
            BrokerInfo {
                id,
                endpoints: reg
                    .endpoints
                    .iter()
                    .filter_map(|e| parse_endpoint(e))
                    .collect(),
                rack: reg.rack,
                epoch: node.czxid,
            },
        );
    }
    Ok(out)
}

async fn read_controller(store: &ZkStore, v: &mut ClusterView) -> Result<(), StoreError> {
    v.controller = match store.get("/controller").await? {
        Some(n) => serde_json::from_slice::<ControllerJson>(&n.data).map_or(-1, |c| c.brokerid),
        None => -1,
    };
    if let Some(n) = store.get("/controller_epoch").await? {
        v.controller_epoch = std::str::from_utf8(&n.data)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
    }
    Ok(())
}

async fn read_state(
    store: &ZkStore,
    topic: &str,
    p: usize,
) -> Result<Option<PartitionState>, StoreError> {
    Ok(store.get(&state_path(topic, p)).await?.and_then(|node| {
        let s: StateJson = serde_json::from_slice(&node.data).ok()?;
        Some(PartitionState {
            leader: s.leader,
            leader_epoch: s.leader_epoch,
            isr: s.isr,
            controller_epoch: s.controller_epoch,
            version: node.version,
        })
    }))
}

/// One topic: its assignment, every partition's state, its configs.
async fn read_topic(store: &ZkStore, t: &str) -> Result<Option<TopicInfo>, StoreError> {
    let Some(node) = store.get(&format!("/brokers/topics/{t}")).await? else {
        return Ok(None);
    };
    let Ok(tj) = serde_json::from_slice::<TopicJson>(&node.data) else {
        tracing::warn!(topic = t, "unreadable topic assignment");
        return Ok(None);
    };
    let n = tj.partitions.len();
    let reassigning = reassign::parse(&tj, n);
    let mut replicas = vec![Vec::new(); n];
    for (p, r) in &tj.partitions {
        if let Some(slot) = p.parse::<usize>().ok().and_then(|i| replicas.get_mut(i)) {
            *slot = r.clone();
        }
    }
    let mut states = Vec::with_capacity(n);
    for start in (0..n).step_by(PIPELINED_READS) {
        let end = (start + PIPELINED_READS).min(n);
        for s in join_all((start..end).map(|p| read_state(store, t, p))).await {
            states.push(s?);
        }
    }
    // Configs changed after creation live in `/config/topics/<t>` (Kafka's place); those given
    // at creation stay in the assignment's JSON.
    let configs = match store.get(&format!("/config/topics/{t}")).await? {
        Some(n) => match serde_json::from_slice::<ConfigJson>(&n.data) {
            Ok(c) => c.config,
            Err(_) => {
                tracing::warn!(topic = t, "unreadable topic configs");
                tj.configs
            }
        },
        None => tj.configs,
    };
    Ok(Some(TopicInfo {
        id: crate::topic_id::parse(&tj.topic_id),
        replicas,
        configs,
        states,
        reassigning,
        version: node.version,
    }))
}

/// `/config/<entity>/*` with configs, by name.
async fn read_configs(
    store: &ZkStore,
    entity: &str,
) -> Result<BTreeMap<String, BTreeMap<String, String>>, StoreError> {
    let mut out = BTreeMap::new();
    for name in store.children(&format!("/config/{entity}")).await? {
        let Some(node) = store.get(&format!("/config/{entity}/{name}")).await? else {
            continue;
        };
        match serde_json::from_slice::<ConfigJson>(&node.data) {
            Ok(c) if !c.config.is_empty() => {
                out.insert(name, c.config);
            }
            Ok(_) => {}
            Err(_) => tracing::warn!(entity, name, "unreadable dynamic configs"),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_path_names_only_what_it_changes() {
        assert_eq!(
            part_of("/brokers/topics/t/partitions/3/state"),
            Some(Part::State("t".into(), 3))
        );
        assert_eq!(
            part_of("/brokers/topics/t/partitions/3"),
            Some(Part::Topic("t".into()))
        );
        assert_eq!(part_of("/brokers/topics/t"), Some(Part::Topic("t".into())));
        assert_eq!(part_of("/brokers/topics"), Some(Part::TopicList));
        assert_eq!(part_of("/brokers/ids/2"), Some(Part::Brokers));
        assert_eq!(part_of("/config/users/a/clients/b"), Some(Part::Quotas));
        assert_eq!(
            part_of("/config/topics/t"),
            Some(Part::TopicConfigs("t".into()))
        );
        assert_eq!(part_of("/config/changes/config_change_1"), None);
        assert_eq!(part_of(""), Some(Part::Everything));
        assert_eq!(part_of("/somewhere/else"), Some(Part::Everything));
    }
}
