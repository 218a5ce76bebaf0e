//! DescribeCluster: the live brokers and the controller (a single broker is both).

use super::{decode, encode, HandlerResult};
use crate::broker::Broker;
use bytes::Bytes;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;

pub fn handle(
    broker: &Arc<Broker>,
    session: &crate::security::Session,
    body: &mut Bytes,
    version: i16,
) -> HandlerResult {
    let req: DescribeClusterRequest = decode(body, version, "DescribeCluster")?;
    let id = BrokerId(broker.config.broker_id);
    // v1's endpoint type (KIP-919): 1 asks for brokers; 2 (controllers) is meant for a KRaft
    // controller's listener, which Ringlet does not have, and Kafka refuses it on a broker's.
    if req.endpoint_type != 1 {
        let resp = DescribeClusterResponse::default()
            .with_error_code(crate::error_code::MISMATCHED_ENDPOINT_TYPE)
            .with_error_message(Some(StrBytes::from_string(format!(
                "The request was sent to an endpoint of type BROKER, but we wanted an endpoint of type {}",
                if req.endpoint_type == 2 { "CONTROLLER" } else { "UNKNOWN" }
            ))))
            .with_endpoint_type(req.endpoint_type);
        return encode(&resp, version).map(Some);
    }
    if !super::cluster_allowed(broker, session, crate::security::code::DESCRIBE) {
        let resp = DescribeClusterResponse::default()
            .with_error_code(crate::error_code::CLUSTER_AUTHORIZATION_FAILED)
            .with_error_message(Some(StrBytes::from_static_str(
                "DescribeCluster needs Describe on the cluster",
            )));
        return encode(&resp, version).map(Some);
    }
    // KIP-430: the operations the session may perform on the cluster, when asked.
    let ops = if req.include_cluster_authorized_operations {
        super::authorized_operations(
            broker,
            session,
            crate::security::code::CLUSTER,
            crate::security::CLUSTER_NAME,
        )
    } else {
        i32::MIN
    };
    if let Some(cluster) = &broker.cluster {
        let view = cluster.view();
        let listener = &broker.config.listeners[session.listener].name;
        let brokers = view
            .brokers
            .values()
            .filter_map(|b| {
                let (host, port) = b.endpoint(Some(listener))?;
                Some(
                    DescribeClusterBroker::default()
                        .with_broker_id(BrokerId(b.id))
                        .with_host(StrBytes::from_string(host))
                        .with_port(i32::from(port))
                        .with_rack(b.rack.clone().map(StrBytes::from_string)),
                )
            })
            .collect();
        let resp = DescribeClusterResponse::default()
            .with_cluster_id(StrBytes::from_string(broker.cluster_id.clone()))
            .with_controller_id(BrokerId(view.controller))
            .with_brokers(brokers)
            .with_cluster_authorized_operations(ops);
        return encode(&resp, version).map(Some);
    }
    let advertised = &broker.config.listeners[session.listener].advertised;
    let resp = DescribeClusterResponse::default()
        .with_cluster_id(StrBytes::from_string(broker.cluster_id.clone()))
        .with_controller_id(id)
        .with_brokers(vec![DescribeClusterBroker::default()
            .with_broker_id(id)
            .with_host(StrBytes::from_string(advertised.host.clone()))
            .with_port(i32::from(advertised.port))])
        .with_cluster_authorized_operations(ops);
    encode(&resp, version).map(Some)
}
