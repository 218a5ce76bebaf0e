//! DescribeConfigs for topics (overrides and broker defaults) and for the broker itself.

use super::{decode, encode, HandlerResult};
use crate::broker::Broker;
use crate::config::topic::TOPIC_KEYS;
use crate::config::{key_type, ConfigType, KEYS};
use crate::error_code as ec;
use bytes::Bytes;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;

pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;
pub const RESOURCE_GROUP: i8 = 32;
// Kafka's config sources (DescribeConfigsResponse `config_source`, KIP-226).
const SOURCE_DYNAMIC_TOPIC: i8 = 1;
const SOURCE_DYNAMIC_BROKER: i8 = 2;
const SOURCE_DYNAMIC_DEFAULT_BROKER: i8 = 3;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;
const SOURCE_GROUP: i8 = 8;

/// What one described key needs besides its value.
struct Described<'a> {
    kind: ConfigType,
    doc: &'a str,
    read_only: bool,
}

fn synonym(name: &str, value: Option<String>, source: i8) -> DescribeConfigsSynonym {
    DescribeConfigsSynonym::default()
        .with_name(StrBytes::from_string(name.to_string()))
        .with_value(value.map(StrBytes::from_string))
        .with_source(source)
}

/// One entry as Kafka writes it: a PASSWORD is sensitive and described without its value, in
/// its synonyms too; type and documentation as asked.
fn entry(
    req: &DescribeConfigsRequest,
    name: &str,
    value: Option<String>,
    source: i8,
    about: Described<'_>,
    synonyms: Vec<DescribeConfigsSynonym>,
) -> DescribeConfigsResourceResult {
    let sensitive = about.kind == ConfigType::Password;
    DescribeConfigsResourceResult::default()
        .with_name(StrBytes::from_string(name.to_string()))
        .with_value(value.filter(|_| !sensitive).map(StrBytes::from_string))
        .with_read_only(about.read_only)
        .with_config_source(source)
        .with_is_sensitive(sensitive)
        .with_config_type(about.kind as i8)
        .with_documentation(
            req.include_documentation
                .then(|| StrBytes::from_string(about.doc.to_string())),
        )
        .with_synonyms(if req.include_synonyms {
            synonyms
                .into_iter()
                .map(|s| if sensitive { s.with_value(None) } else { s })
                .collect()
        } else {
            Vec::new()
        })
}

/// A broker key's default as Kafka would report it: `None` where it has none of its own
/// (written "(...)" in the keys table: unset, or taken from another key).
fn broker_default(key: &str) -> Option<&'static str> {
    KEYS.iter()
        .find(|(k, _, _)| *k == key)
        .map(|(_, d, _)| *d)
        .filter(|d| !d.starts_with('('))
}

/// The broker keys behind `key`, most specific first (`log.retention.ms` then `.minutes`,
/// `.hours`): a topic key's synonyms when `key` is the first of them, else `key` alone.
fn broker_synonyms(key: &str) -> Vec<&str> {
    TOPIC_KEYS
        .iter()
        .find(|t| t.synonyms.first() == Some(&key))
        .map_or_else(|| vec![key], |t| t.synonyms.to_vec())
}

/// The dynamic broker values of `keys` (KIP-226): this broker's (DYNAMIC_BROKER_CONFIG), then the
/// cluster default's (DYNAMIC_DEFAULT_BROKER_CONFIG), each in precedence order; the first is the
/// one in force.
fn dynamic_values(broker: &Broker, keys: &[&str]) -> Vec<(String, String, i8)> {
    let d = broker.dynamic_configs();
    let pick = |m: &std::collections::BTreeMap<String, String>, source: i8| {
        keys.iter()
            .filter_map(|k| m.get(*k).map(|v| (k.to_string(), v.clone(), source)))
            .collect::<Vec<_>>()
    };
    let mut out = pick(&d.own, SOURCE_DYNAMIC_BROKER);
    out.extend(pick(&d.default, SOURCE_DYNAMIC_DEFAULT_BROKER));
    out
}

/// Synonyms of a value that comes from broker keys: dynamic ones (this broker's, then the
/// cluster default's), those set in the broker's properties (STATIC_BROKER_CONFIG), then those
/// with a default (DEFAULT_CONFIG), each in precedence order.
fn static_and_default(
    broker: &Broker,
    keys: &[&str],
    fallback_default: Option<String>,
) -> Vec<DescribeConfigsSynonym> {
    let props = &broker.config.properties;
    let mut out: Vec<_> = dynamic_values(broker, keys)
        .into_iter()
        .map(|(k, v, source)| synonym(&k, Some(v), source))
        .collect();
    out.extend(keys.iter().filter_map(|k| {
        props
            .get(*k)
            .map(|v| synonym(k, Some(v.clone()), SOURCE_STATIC_BROKER))
    }));
    let mut defaults: Vec<_> = keys
        .iter()
        .filter_map(|k| broker_default(k).map(|d| synonym(k, Some(d.into()), SOURCE_DEFAULT)))
        .collect();
    if defaults.is_empty() {
        // Broker keys Ringlet does not read (log.cleanup.policy, compression.type): the
        // topic's default is theirs.
        if let (Some(k), Some(d)) = (keys.first(), fallback_default) {
            defaults.push(synonym(k, Some(d), SOURCE_DEFAULT));
        }
    }
    out.append(&mut defaults);
    out
}

fn topic_entries(
    broker: &Broker,
    req: &DescribeConfigsRequest,
    configs: &std::collections::BTreeMap<String, String>,
    wanted: &dyn Fn(&str) -> bool,
) -> Vec<DescribeConfigsResourceResult> {
    let props = &broker.config.properties;
    let effective = broker.effective_config();
    TOPIC_KEYS
        .iter()
        .filter(|k| wanted(k.name))
        .map(|k| {
            let value = configs
                .get(k.name)
                .cloned()
                .unwrap_or_else(|| k.default_value(&effective));
            let dynamic = dynamic_values(broker, k.synonyms);
            let source = if configs.contains_key(k.name) {
                SOURCE_DYNAMIC_TOPIC
            } else if let Some((_, _, source)) = dynamic.first() {
                *source
            } else if k.synonyms.iter().any(|s| props.contains_key(*s)) {
                SOURCE_STATIC_BROKER
            } else {
                SOURCE_DEFAULT
            };
            let mut synonyms: Vec<_> = configs
                .get(k.name)
                .map(|v| synonym(k.name, Some(v.clone()), SOURCE_DYNAMIC_TOPIC))
                .into_iter()
                .collect();
            synonyms.extend(static_and_default(
                broker,
                k.synonyms,
                // A broker key Ringlet does not read (log.cleanup.policy, the log cleaner's):
                // the topic's default is its default.
                (!KEYS.iter().any(|(b, _, _)| Some(b) == k.synonyms.first()))
                    .then(|| k.default_value(&effective)),
            ));
            let about = Described {
                kind: k.kind,
                doc: k.doc,
                read_only: false,
            };
            entry(req, k.name, Some(value), source, about, synonyms)
        })
        .collect()
}

fn broker_entries(
    broker: &Broker,
    req: &DescribeConfigsRequest,
    wanted: &dyn Fn(&str) -> bool,
) -> Vec<DescribeConfigsResourceResult> {
    KEYS.iter()
        .filter(|(k, _, _)| wanted(k))
        .map(|(k, default, doc)| {
            let set = broker.config.properties.get(*k);
            let dynamic = dynamic_values(broker, &[k]);
            let (value, source) = match (dynamic.into_iter().next(), set) {
                (Some((_, v, source)), _) => (Some(v), source),
                (None, Some(v)) => (Some(v.clone()), SOURCE_STATIC_BROKER),
                (None, None) => (
                    (!default.starts_with('(')).then(|| default.to_string()),
                    SOURCE_DEFAULT,
                ),
            };
            // Only the log defaults topics inherit change without a restart (KIP-226).
            let about = Described {
                kind: key_type(k),
                doc,
                read_only: !crate::broker::dynamic::is_dynamic(k),
            };
            let synonyms = static_and_default(broker, &broker_synonyms(k), None);
            entry(req, k, value, source, about, synonyms)
        })
        .collect()
}

/// A group's configs (Kafka's GroupConfig keys Ringlet takes): set ones as GROUP_CONFIG, the
/// others with the broker default they fall back to.
fn group_entries(
    broker: &Broker,
    req: &DescribeConfigsRequest,
    name: &str,
    wanted: &dyn Fn(&str) -> bool,
) -> Vec<DescribeConfigsResourceResult> {
    let set = broker.group_configs(name);
    let share = &broker.config.share_groups;
    let keys = [
        ("share.auto.offset.reset", "latest".to_string(), ConfigType::String, "Where a share group's partitions start when first read: latest or earliest."),
        ("share.isolation.level", "read_uncommitted".to_string(), ConfigType::String, "Which records share consumers see (read_uncommitted only)."),
        ("share.record.lock.duration.ms", share.record_lock_duration_ms.to_string(), ConfigType::Int, "How long a member holds the records it acquired (group.share.record.lock.duration.ms by default)."),
    ];
    keys.into_iter()
        .filter(|(k, ..)| wanted(k))
        .map(|(k, default, kind, doc)| {
            let (value, source) = match set.get(k) {
                Some(v) => (v.clone(), SOURCE_GROUP),
                None => (default, SOURCE_DEFAULT),
            };
            let about = Described {
                kind,
                doc,
                read_only: false,
            };
            entry(req, k, Some(value), source, about, Vec::new())
        })
        .collect()
}

pub async fn handle(
    broker: &Arc<Broker>,
    session: &crate::security::Session,
    body: &mut Bytes,
    version: i16,
) -> HandlerResult {
    let req: DescribeConfigsRequest = decode(body, version, "DescribeConfigs")?;
    let mut results = Vec::new();
    for r in &req.resources {
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
                let configs = broker.topic_configs(&name);
                match configs {
                    None => {
                        out.error_code = ec::UNKNOWN_TOPIC_OR_PARTITION;
                        out.error_message = Some(StrBytes::from_string(format!(
                            "topic '{name}' does not exist"
                        )));
                    }
                    Some(configs) => {
                        out.configs = topic_entries(broker, &req, &configs, &wanted);
                    }
                }
            }
            RESOURCE_BROKER => {
                if name != broker.config.broker_id.to_string() && !name.is_empty() {
                    out.error_code = ec::INVALID_REQUEST;
                    out.error_message =
                        Some(StrBytes::from_string(format!("unknown broker '{name}'")));
                } else if name.is_empty() {
                    // The cluster-wide default (`<default>`): only what is set there.
                    out.configs = broker
                        .broker_resource_configs("")
                        .into_iter()
                        .filter(|(k, _)| wanted(k))
                        .map(|(k, v)| {
                            let about = Described {
                                kind: key_type(&k),
                                doc: "",
                                read_only: false,
                            };
                            entry(
                                &req,
                                &k,
                                Some(v),
                                SOURCE_DYNAMIC_DEFAULT_BROKER,
                                about,
                                Vec::new(),
                            )
                        })
                        .collect();
                } else {
                    out.configs = broker_entries(broker, &req, &wanted);
                }
            }
            RESOURCE_GROUP => out.configs = group_entries(broker, &req, &name, &wanted),
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
