//! AlterConfigs (replace a topic's overrides) and IncrementalAlterConfigs (SET, DELETE, and
//! APPEND / SUBTRACT on LIST keys).

use super::describe_configs::{RESOURCE_BROKER, RESOURCE_GROUP, RESOURCE_TOPIC};
use super::{decode, encode, HandlerResult};
use crate::broker::Broker;
use crate::config::topic;
use crate::error_code as ec;
use bytes::Bytes;
use kafka_protocol::messages::{alter_configs_response, incremental_alter_configs_response};
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse,
};
use std::collections::BTreeMap;
use std::sync::Arc;

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

/// Authorizes (AlterConfigs on the topic or cluster), then edits and stores a resource's configs.
async fn apply(
    broker: &Arc<Broker>,
    session: &crate::security::Session,
    resource_type: i8,
    name: &str,
    edit: impl FnOnce(&mut BTreeMap<String, String>) -> Result<(), String>,
    validate_only: bool,
) -> Result<(), (i16, String)> {
    let op = crate::security::code::ALTER_CONFIGS;
    if let Some(refusal) = super::config_refusal(broker, session, op, resource_type, name) {
        return Err(refusal);
    }
    match resource_type {
        RESOURCE_TOPIC => {
            let current = broker.topic_configs(name).ok_or_else(|| {
                (
                    ec::UNKNOWN_TOPIC_OR_PARTITION,
                    format!("topic '{name}' does not exist"),
                )
            })?;
            let mut next = current;
            edit(&mut next).map_err(|m| (ec::INVALID_CONFIG, m))?;
            broker.set_topic_configs(name, next, validate_only).await
        }
        RESOURCE_GROUP => {
            let mut next = broker.group_configs(name);
            edit(&mut next).map_err(|m| (ec::INVALID_CONFIG, m))?;
            crate::share::validate_group_configs(&next, &broker.config)
                .map_err(|m| (ec::INVALID_CONFIG, m))?;
            if validate_only {
                return Ok(());
            }
            broker.set_group_configs(name, next).await
        }
        RESOURCE_BROKER => {
            let mut next = broker.broker_resource_configs(name);
            edit(&mut next).map_err(|m| (ec::INVALID_CONFIG, m))?;
            broker.set_broker_configs(name, next, validate_only).await
        }
        other => Err((
            ec::INVALID_REQUEST,
            format!("resource type {other} is not supported"),
        )),
    }
}

pub async fn handle(
    broker: &Arc<Broker>,
    session: &crate::security::Session,
    body: &mut Bytes,
    version: i16,
) -> HandlerResult {
    let req: AlterConfigsRequest = decode(body, version, "AlterConfigs")?;
    let mut responses = Vec::new();
    for r in req.resources {
        let name = r.resource_name.to_string();
        let set: BTreeMap<String, String> = r
            .configs
            .iter()
            .filter_map(|c| {
                c.value
                    .as_ref()
                    .map(|v| (c.name.to_string(), v.to_string()))
            })
            .collect();
        let res = apply(
            broker,
            session,
            r.resource_type,
            &name,
            |m| {
                *m = set;
                Ok(())
            },
            req.validate_only,
        )
        .await;
        let mut out = alter_configs_response::AlterConfigsResourceResponse::default()
            .with_resource_type(r.resource_type)
            .with_resource_name(r.resource_name);
        if let Err((code, msg)) = res {
            out.error_code = code;
            out.error_message = super::refused("alter configs", &name, code, msg);
        }
        responses.push(out);
    }
    encode(
        &AlterConfigsResponse::default().with_responses(responses),
        version,
    )
    .map(Some)
}

pub async fn handle_incremental(
    broker: &Arc<Broker>,
    session: &crate::security::Session,
    body: &mut Bytes,
    version: i16,
) -> HandlerResult {
    let req: IncrementalAlterConfigsRequest = decode(body, version, "IncrementalAlterConfigs")?;
    let mut responses = Vec::new();
    for r in req.resources {
        let name = r.resource_name.to_string();
        let ops: Vec<(String, i8, Option<String>)> = r
            .configs
            .iter()
            .map(|c| {
                (
                    c.name.to_string(),
                    c.config_operation,
                    c.value.as_ref().map(|v| v.to_string()),
                )
            })
            .collect();
        let res = apply(
            broker,
            session,
            r.resource_type,
            &name,
            |m| {
                for (k, op, v) in ops {
                    match op {
                        OP_SET => {
                            m.insert(k, v.unwrap_or_default());
                        }
                        OP_DELETE => {
                            m.remove(&k);
                        }
                        OP_APPEND | OP_SUBTRACT => {
                            // LIST keys only, starting from the override or the default, as
                            // Kafka's ConfigAdminManager does.
                            let key = topic::topic_key(&k)
                                .filter(|t| t.kind == crate::config::ConfigType::List)
                                .ok_or_else(|| {
                                    let what = if op == OP_APPEND {
                                        "APPEND"
                                    } else {
                                        "SUBTRACT"
                                    };
                                    format!("Can't {what} to key {k} because its type is not LIST.")
                                })?;
                            let current = m
                                .get(&k)
                                .cloned()
                                .unwrap_or_else(|| key.default_value(&broker.config));
                            let mut items: Vec<String> = current
                                .split(',')
                                .map(str::trim)
                                .filter(|s| !s.is_empty())
                                .map(String::from)
                                .collect();
                            let given = v.unwrap_or_default();
                            let given = given.split(',').map(str::trim).filter(|s| !s.is_empty());
                            if op == OP_APPEND {
                                for g in given {
                                    if !items.iter().any(|i| i == g) {
                                        items.push(g.to_string());
                                    }
                                }
                            } else {
                                let drop: Vec<&str> = given.collect();
                                items.retain(|i| !drop.contains(&i.as_str()));
                            }
                            m.insert(k, items.join(","));
                        }
                        _ => return Err(format!("unknown config operation {op} on {k}")),
                    }
                }
                Ok(())
            },
            req.validate_only,
        )
        .await;
        let mut out = incremental_alter_configs_response::AlterConfigsResourceResponse::default()
            .with_resource_type(r.resource_type)
            .with_resource_name(r.resource_name);
        if let Err((code, msg)) = res {
            out.error_code = code;
            out.error_message = super::refused("incremental alter configs", &name, code, msg);
        }
        responses.push(out);
    }
    encode(
        &IncrementalAlterConfigsResponse::default().with_responses(responses),
        version,
    )
    .map(Some)
}
