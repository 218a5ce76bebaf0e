//! The znodes' JSON, in Kafka's formats.

use crate::cluster::{PartitionState, TopicInfo};
use crate::config::BrokerConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Serialize, Deserialize)]
pub(super) struct RegistrationJson {
    pub(super) version: i32,
    pub(super) host: String,
    pub(super) port: i32,
    pub(super) endpoints: Vec<String>,
    #[serde(default)]
    pub(super) listener_security_protocol_map: BTreeMap<String, String>,
    #[serde(default)]
    pub(super) rack: Option<String>,
    pub(super) jmx_port: i32,
    pub(super) timestamp: String,
}

#[derive(Serialize, Deserialize)]
pub(super) struct TopicJson {
    pub(super) version: i32,
    pub(super) topic_id: String,
    pub(super) partitions: BTreeMap<String, Vec<i32>>,
    #[serde(default)]
    pub(super) adding_replicas: BTreeMap<String, Vec<i32>>,
    #[serde(default)]
    pub(super) removing_replicas: BTreeMap<String, Vec<i32>>,
    /// Ringlet keeps topic configs here (Kafka keeps them in `/config/topics/<t>`).
    #[serde(default)]
    pub(super) configs: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize)]
pub(super) struct StateJson {
    pub(super) version: i32,
    pub(super) leader: i32,
    pub(super) leader_epoch: i32,
    pub(super) isr: Vec<i32>,
    pub(super) controller_epoch: i32,
}

/// `/admin/preferred_replica_election`: `{"version":1,"partitions":[{"topic":..,"partition":..}]}`.
#[derive(Serialize, Deserialize)]
pub(super) struct ElectionJson {
    pub(super) version: i32,
    pub(super) partitions: Vec<ElectionPartition>,
}

#[derive(Serialize, Deserialize)]
pub(super) struct ElectionPartition {
    pub(super) topic: String,
    pub(super) partition: i32,
}

/// `/admin/reassign_partitions`, Kafka's (pre-KIP-455) znode of a reassignment for the
/// controller to start: `{"version":1,"partitions":[{"topic":..,"partition":..,"replicas":[..]}]}`;
/// Ringlet writes `"replicas":null` for a cancellation.
#[derive(Serialize, Deserialize)]
pub(super) struct ReassignJson {
    pub(super) version: i32,
    pub(super) partitions: Vec<ReassignPartition>,
}

#[derive(Serialize, Deserialize)]
pub(super) struct ReassignPartition {
    pub(super) topic: String,
    pub(super) partition: i32,
    pub(super) replicas: Option<Vec<i32>>,
}

/// `/config/<entity>/<name>`: `{"version":1,"config":{...}}`, as Kafka's ZooKeeper mode.
#[derive(Serialize, Deserialize)]
pub(super) struct ConfigJson {
    pub(super) version: i32,
    #[serde(default)]
    pub(super) config: BTreeMap<String, String>,
}

pub(super) fn config_json(configs: &BTreeMap<String, String>) -> Vec<u8> {
    serde_json::to_vec(&ConfigJson {
        version: 1,
        config: configs.clone(),
    })
    .expect("config json")
}

#[derive(Deserialize)]
pub(super) struct ControllerJson {
    pub(super) brokerid: i32,
}

pub fn state_json(s: &PartitionState) -> Vec<u8> {
    serde_json::to_vec(&StateJson {
        version: 1,
        leader: s.leader,
        leader_epoch: s.leader_epoch,
        isr: s.isr.clone(),
        controller_epoch: s.controller_epoch,
    })
    .expect("state json")
}

pub(crate) fn topic_json(t: &TopicInfo) -> Vec<u8> {
    serde_json::to_vec(&TopicJson {
        version: 2,
        topic_id: crate::topic_id::print(t.id),
        partitions: t
            .replicas
            .iter()
            .enumerate()
            .map(|(i, r)| (i.to_string(), r.clone()))
            .collect(),
        adding_replicas: t
            .reassigning
            .iter()
            .filter(|(_, r)| !r.adding.is_empty())
            .map(|(p, r)| (p.to_string(), r.adding.clone()))
            .collect(),
        removing_replicas: t
            .reassigning
            .iter()
            .filter(|(_, r)| !r.removing.is_empty())
            .map(|(p, r)| (p.to_string(), r.removing.clone()))
            .collect(),
        configs: t.configs.clone(),
    })
    .expect("topic json")
}

pub(super) fn registration_json(config: &BrokerConfig) -> Vec<u8> {
    let first = &config.listeners[0];
    serde_json::to_vec(&RegistrationJson {
        version: 5,
        host: first.advertised.host.clone(),
        port: i32::from(first.advertised.port),
        endpoints: config
            .listeners
            .iter()
            .map(|l| format!("{}://{}:{}", l.name, l.advertised.host, l.advertised.port))
            .collect(),
        listener_security_protocol_map: config
            .listeners
            .iter()
            .map(|l| (l.name.clone(), l.protocol.name().to_string()))
            .collect(),
        rack: config.cluster.broker_rack.clone(),
        jmx_port: -1,
        timestamp: ringlet_engine::config::now_ms().to_string(),
    })
    .expect("registration json")
}

pub(super) fn parse_endpoint(e: &str) -> Option<(String, String, u16)> {
    let (name, rest) = e.split_once("://")?;
    let (host, port) = rest.rsplit_once(':')?;
    Some((name.to_string(), host.to_string(), port.parse().ok()?))
}

pub(super) fn state_path(topic: &str, partition: usize) -> String {
    format!("/brokers/topics/{topic}/partitions/{partition}/state")
}
