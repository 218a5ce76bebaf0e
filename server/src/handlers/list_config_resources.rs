//! ListConfigResources (API 74; v0 was ListClientMetricsResources, v1 is KIP-1142's): the
//! resources whose configs DescribeConfigs can describe, by type.

use super::metadata::Source;
use super::{decode, encode, HandlerResult};
use crate::broker::Broker;
use crate::error_code as ec;
use crate::security::code;
use bytes::Bytes;
use kafka_protocol::messages::list_config_resources_response::ConfigResource;
use kafka_protocol::messages::{ListConfigResourcesRequest, ListConfigResourcesResponse};
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const BROKER_LOGGER: i8 = 8;
const CLIENT_METRICS: i8 = 16;
const GROUP: i8 = 32;

pub fn handle(
    broker: &Arc<Broker>,
    session: &crate::security::Session,
    body: &mut Bytes,
    version: i16,
) -> HandlerResult {
    let req: ListConfigResourcesRequest = decode(body, version, "ListConfigResources")?;
    let mut resp = ListConfigResourcesResponse::default();
    if !super::cluster_allowed(broker, session, code::DESCRIBE_CONFIGS) {
        resp.error_code = ec::CLUSTER_AUTHORIZATION_FAILED;
        return encode(&resp, version).map(Some);
    }
    // v0 lists client-metrics resources only, of which Ringlet has none.
    let wanted: Vec<i8> = match version {
        0 => vec![CLIENT_METRICS],
        _ if req.resource_types.is_empty() => vec![TOPIC, BROKER],
        _ => req.resource_types.clone(),
    };
    if let Some(t) = wanted
        .iter()
        .find(|t| ![TOPIC, BROKER, BROKER_LOGGER, CLIENT_METRICS, GROUP].contains(t))
    {
        tracing::info!(
            resource_type = t,
            "ListConfigResources for an unknown resource type"
        );
        resp.error_code = ec::INVALID_REQUEST;
        return encode(&resp, version).map(Some);
    }
    let source = Source::current(broker);
    let entry = |name: String, kind: i8| {
        ConfigResource::default()
            .with_resource_name(StrBytes::from_string(name))
            .with_resource_type(kind)
    };
    // Broker loggers, client metrics and groups have no configs here (no dynamic logger levels,
    // no client metrics subscriptions, no group configs yet): listed as none.
    if wanted.contains(&BROKER) {
        resp.config_resources.extend(
            source
                .broker_ids(broker)
                .map(|id| entry(id.to_string(), BROKER)),
        );
    }
    if wanted.contains(&TOPIC) {
        resp.config_resources.extend(
            source
                .topic_names()
                .filter(|n| {
                    broker
                        .authorizer
                        .authorize(session, code::DESCRIBE_CONFIGS, code::TOPIC, n)
                })
                .map(|n| entry(n.clone(), TOPIC)),
        );
    }
    encode(&resp, version).map(Some)
}
