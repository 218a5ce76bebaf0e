//! Metadata: brokers, topics and partitions; auto-creates topics when allowed.

use super::{decode, encode, HandlerResult};
use crate::broker::Broker;
use crate::error_code as ec;
use bytes::Bytes;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;

/// How long Metadata waits for a cluster member's first view of the cluster.
const VIEW_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

pub async fn handle(
    broker: &Arc<Broker>,
    session: &crate::security::Session,
    body: &mut Bytes,
    version: i16,
) -> HandlerResult {
    let req: MetadataRequest = decode(body, version, "Metadata")?;
    // A cluster member that has just started (or lost its ZooKeeper session) does not know the
    // cluster yet: it waits for the view, as a Kafka broker serves clients only once it has
    // caught up with the metadata, rather than call existing topics unknown. Still loading
    // after the wait, it answers LEADER_NOT_AVAILABLE (retriable) for topics it cannot see.
    let loading = match &broker.cluster {
        Some(c) if !c.view().loaded => {
            let until = std::time::Instant::now() + VIEW_WAIT;
            !c.wait_for_view(until, |v| v.loaded).await
        }
        _ => false,
    };
    // From v10 a topic may be named by its id alone; an id no topic has is answered
    // UNKNOWN_TOPIC_ID, with the id and a null name, as Kafka answers it.
    let mut unknown_ids = Vec::new();
    let requested: Option<Vec<String>> = req.topics.map(|ts| {
        ts.into_iter()
            .filter_map(|t| match t.name {
                Some(n) => Some(n.0.to_string()),
                None if !t.topic_id.is_nil() => {
                    let name = broker.topic_name(*t.topic_id.as_bytes());
                    if name.is_none() {
                        unknown_ids.push(t.topic_id);
                    }
                    name
                }
                None => None,
            })
            .collect()
    });
    // v0 asks for all topics with an empty list; later versions with null.
    let requested = match requested {
        Some(v) if v.is_empty() && version == 0 => None,
        other => other,
    };
    let allow_create = (version < 4 || req.allow_auto_topic_creation)
        && broker.config.auto_create_topics_enable
        && !loading;
    use crate::security::code;
    if let (Some(names), true) = (&requested, allow_create) {
        for n in names {
            if !broker.topic_exists(n) && super::may_create_topic(broker, session, n) {
                if let Err((code, msg)) = broker
                    .create_topic(n, -1, -1, Default::default(), false)
                    .await
                {
                    if code != ec::TOPIC_ALREADY_EXISTS {
                        tracing::debug!(
                            topic = n,
                            code = ec::name(code),
                            msg,
                            "auto-create failed"
                        );
                    }
                }
            }
        }
    }
    let source = Source::current(broker);
    // Listing all topics includes the internal ones (marked is_internal), as Kafka does; with
    // ACLs, only those the principal may describe.
    let names: Vec<String> = requested.unwrap_or_else(|| {
        source
            .topic_names()
            .filter(|n| {
                broker
                    .authorizer
                    .authorize(session, code::DESCRIBE, code::TOPIC, n)
            })
            .cloned()
            .collect()
    });
    let id = broker.config.broker_id;
    let mut topics = Vec::with_capacity(names.len());
    for name in names {
        let mut t = MetadataResponseTopic::default()
            .with_name(Some(TopicName(StrBytes::from_string(name.clone()))));
        // A topic the principal may not describe is refused whether it exists or not, so that
        // its existence does not leak.
        if !broker
            .authorizer
            .authorize(session, code::DESCRIBE, code::TOPIC, &name)
        {
            t.error_code = ec::TOPIC_AUTHORIZATION_FAILED;
            topics.push(t);
            continue;
        }
        match source.partitions(&name, id) {
            // A name no topic can have is INVALID_TOPIC_EXCEPTION, as Kafka answers it.
            None if crate::broker::validate_topic_name(&name).is_err() => {
                t.error_code = ec::INVALID_TOPIC_EXCEPTION
            }
            None if loading => t.error_code = ec::LEADER_NOT_AVAILABLE,
            None => t.error_code = ec::UNKNOWN_TOPIC_OR_PARTITION,
            Some((topic_id, partitions)) => {
                if req.include_topic_authorized_operations {
                    t.topic_authorized_operations =
                        super::authorized_operations(broker, session, code::TOPIC, &name);
                }
                t.topic_id = uuid_from(topic_id);
                t.is_internal =
                    name == crate::coordinator::OFFSETS_TOPIC || name == crate::txn::TXN_TOPIC;
                t.partitions = partitions;
            }
        }
        topics.push(t);
    }
    topics.extend(unknown_ids.into_iter().map(|id| {
        MetadataResponseTopic::default()
            .with_name(None)
            .with_topic_id(id)
            .with_error_code(ec::UNKNOWN_TOPIC_ID)
    }));
    let (brokers, controller) = brokers(broker, session, &source);
    let mut resp = MetadataResponse::default();
    // v8-v10 only; from v11 clients ask DescribeCluster.
    if req.include_cluster_authorized_operations {
        resp.cluster_authorized_operations = super::authorized_operations(
            broker,
            session,
            code::CLUSTER,
            crate::security::CLUSTER_NAME,
        );
    }
    let resp = resp
        .with_brokers(brokers)
        .with_cluster_id(Some(StrBytes::from_string(broker.cluster_id.clone())))
        .with_controller_id(BrokerId(controller))
        .with_topics(topics);
    encode(&resp, version).map(Some)
}

/// The brokers a client on this session's listener is told of, and the controller: a single
/// broker is both; a cluster member lists the registered brokers (itself while it is loading).
fn brokers(
    broker: &Broker,
    session: &crate::security::Session,
    source: &Source,
) -> (Vec<MetadataResponseBroker>, i32) {
    let id = broker.config.broker_id;
    let advertised = &broker.config.listeners[session.listener].advertised;
    let me = MetadataResponseBroker::default()
        .with_node_id(BrokerId(id))
        .with_host(StrBytes::from_string(advertised.host.clone()))
        .with_port(i32::from(advertised.port));
    match source {
        Source::Local(_) => (vec![me], id),
        Source::Cluster(view) => {
            let listener = &broker.config.listeners[session.listener].name;
            let mut brokers: Vec<_> = view
                .brokers
                .values()
                .filter_map(|b| {
                    let (host, port) = b.endpoint(Some(listener))?;
                    Some(
                        MetadataResponseBroker::default()
                            .with_node_id(BrokerId(b.id))
                            .with_host(StrBytes::from_string(host))
                            .with_port(i32::from(port))
                            .with_rack(b.rack.clone().map(StrBytes::from_string)),
                    )
                })
                .collect();
            if brokers.is_empty() {
                // Never an answer without brokers: while loading, this one is all it knows.
                brokers.push(me);
            }
            (brokers, view.controller)
        }
    }
}

/// Where topics and partitions come from.
pub(super) enum Source {
    Local(crate::broker::Metadata),
    Cluster(Arc<crate::cluster::ClusterView>),
}

impl Source {
    /// A single broker answers from its own metadata; a cluster member from the cluster view.
    pub(super) fn current(broker: &Broker) -> Source {
        match &broker.cluster {
            Some(c) => Source::Cluster(c.view()),
            None => Source::Local(broker.metadata.read().expect("metadata lock").clone()),
        }
    }

    /// The ids of the brokers: this one alone, or every registered cluster member.
    pub(super) fn broker_ids<'a>(&'a self, broker: &Broker) -> Box<dyn Iterator<Item = i32> + 'a> {
        match self {
            Source::Local(_) => Box::new(std::iter::once(broker.config.broker_id)),
            Source::Cluster(v) => Box::new(v.brokers.keys().copied()),
        }
    }

    pub(super) fn topic_names(&self) -> Box<dyn Iterator<Item = &String> + '_> {
        match self {
            Source::Local(md) => Box::new(md.topics.keys()),
            Source::Cluster(v) => Box::new(v.topics.keys()),
        }
    }

    /// The topic's id and partitions; `me` leads every partition of a single broker. In a
    /// cluster: each partition's leader, epoch, replicas and ISR as ZooKeeper has them.
    pub(super) fn partitions(
        &self,
        name: &str,
        me: i32,
    ) -> Option<([u8; 16], Vec<MetadataResponsePartition>)> {
        let ids = |v: &[i32]| v.iter().map(|&b| BrokerId(b)).collect::<Vec<_>>();
        match self {
            Source::Local(md) => {
                let meta = md.topics.get(name)?;
                let parts = (0..meta.partitions.len() as i32)
                    .map(|i| {
                        MetadataResponsePartition::default()
                            .with_partition_index(i)
                            .with_leader_id(BrokerId(me))
                            .with_leader_epoch(0)
                            .with_replica_nodes(vec![BrokerId(me)])
                            .with_isr_nodes(vec![BrokerId(me)])
                    })
                    .collect();
                Some((meta.id, parts))
            }
            Source::Cluster(view) => {
                let info = view.topics.get(name)?;
                let parts = info
                    .replicas
                    .iter()
                    .enumerate()
                    .map(|(i, replicas)| {
                        let state = info.states.get(i).and_then(Option::as_ref);
                        let offline: Vec<i32> = replicas
                            .iter()
                            .copied()
                            .filter(|b| !view.brokers.contains_key(b))
                            .collect();
                        let mut p = MetadataResponsePartition::default()
                            .with_partition_index(i as i32)
                            .with_replica_nodes(ids(replicas))
                            .with_offline_replicas(ids(&offline));
                        match state {
                            Some(s) if s.leader >= 0 && view.brokers.contains_key(&s.leader) => {
                                p.leader_id = BrokerId(s.leader);
                                p.leader_epoch = s.leader_epoch;
                                p.isr_nodes = ids(&s.isr);
                            }
                            s => {
                                p.error_code = ec::LEADER_NOT_AVAILABLE;
                                p.leader_id = BrokerId(-1);
                                p.leader_epoch = s.map_or(-1, |s| s.leader_epoch);
                                p.isr_nodes = ids(s.map_or(&[][..], |s| &s.isr));
                            }
                        }
                        p
                    })
                    .collect();
                Some((info.id, parts))
            }
        }
    }
}

pub fn uuid_from(id: [u8; 16]) -> uuid::Uuid {
    uuid::Uuid::from_bytes(id)
}
