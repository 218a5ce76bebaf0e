//! DescribeConfigs for topics (overrides and broker defaults) and for the broker itself.

use super::{decode, encode, HandlerResult};
use crate::broker::Broker;
use crate::config::KEYS;
use crate::error_code as ec;
use bytes::Bytes;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;

pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;
const SOURCE_DYNAMIC_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;

fn entry(
    name: &str,
    value: Option<String>,
    source: i8,
) -> DescribeConfigsResourceResult {
    DescribeConfigsResourceResult::default()
        .with_name(StrBytes::from_string(name.to_string()))
        .with_value(value.map(StrBytes::from_string))
        .with_read_only(false)
        .with_config_source(source)
        .with_is_sensitive(false)
}

/// Keys whose values are secrets (passwords, private keys): described without their value, as
/// Kafka does for its PASSWORD-typed configs.
fn sensitive(key: &str) -> bool {
    key.contains("password") || key.contains("jaas") || key == "ssl.keystore.key"
}

pub async fn handle(
    broker: &Arc<Broker>,
    session: &crate::security::Session,
    body: &mut Bytes,
    version: i16,
) -> HandlerResult {
    let req: DescribeConfigsRequest = decode(body, version, "DescribeConfigs")?;
    let mut results = Vec::new();
    for r in req.resources {
        let name = r.resource_name.to_string();
        let wanted = |k: &str| {
            r.configuration_keys
                .as_ref()
                // Null asks for every key; so does an empty list (a lenient reading).
                .is_none_or(|keys| keys.is_empty() || keys.iter().any(|x| x.as_str() == k))
        };
        let mut out = DescribeConfigsResult::default()
            .with_resource_type(r.resource_type)
            .with_resource_name(r.resource_name.clone());
        if let Some((code, msg)) = super::config_refusal(
            broker,
            session,
            crate::security::code::DESCRIBE_CONFIGS,
            r.resource_type,
            &name,
        ) {
            out.error_code = code;
            out.error_message = Some(StrBytes::from_string(msg));
            results.push(out);
            continue;
        }
        match r.resource_type {
            RESOURCE_TOPIC => {
                let configs = broker
                    .metadata
                    .read()
                    .expect("metadata lock")
                    .topics
                    .get(&name)
                    .map(|t| t.configs.clone());
                match configs {
                    None => {
                        out.error_code = ec::UNKNOWN_TOPIC_OR_PARTITION;
                        out.error_message = Some(StrBytes::from_string(format!(
                            "topic '{name}' does not exist"
                        )));
                    }
                    Some(configs) => {
                        out.configs = broker
                            .effective_topic_configs(&configs)
                            .into_iter()
                            .filter(|(k, _, _)| wanted(k))
                            .map(|(k, v, is_override)| {
                                entry(
                                    &k,
                                    Some(v),
                                    if is_override {
                                        SOURCE_DYNAMIC_TOPIC
                                    } else {
                                        SOURCE_DEFAULT
                                    },
                                )
                            })
                            .collect();
                    }
                }
            }
            RESOURCE_BROKER => {
                if name != broker.config.broker_id.to_string() && !name.is_empty() {
                    out.error_code = ec::INVALID_REQUEST;
                    out.error_message =
                        Some(StrBytes::from_string(format!("unknown broker '{name}'")));
                } else {
                    out.configs = KEYS
                        .iter()
                        .filter(|(k, _, _)| wanted(k))
                        .map(|(k, default, _)| match broker.config.properties.get(*k) {
                            Some(_) if sensitive(k) => {
                                let mut e = entry(k, None, SOURCE_STATIC_BROKER);
                                e.is_sensitive = true;
                                e
                            }
                            Some(v) => entry(k, Some(v.clone()), SOURCE_STATIC_BROKER),
                            None => entry(
                                k,
                                (!default.starts_with('(')).then(|| default.to_string()),
                                SOURCE_DEFAULT,
                            ),
                        })
                        .collect();
                }
            }
            other => {
                out.error_code = ec::INVALID_REQUEST;
                out.error_message = Some(StrBytes::from_string(format!(
                    "resource type {other} is not supported"
                )));
            }
        }
        results.push(out);
    }
    encode(
        &DescribeConfigsResponse::default().with_results(results),
        version,
    )
    .map(Some)
}
