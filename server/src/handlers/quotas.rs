//! DescribeClientQuotas and AlterClientQuotas (KIP-546): what `kafka-configs --entity-type
//! users|clients|ips` and AdminClient's quota calls use. Kafka's checks and messages; the
//! storage and enforcement are in `crate::quota`.

use super::{decode, encode, HandlerResult};
use crate::broker::Broker;
use crate::error_code as ec;
use crate::metrics::{error_codes, ErrorCodes};
use crate::quota::Entity;
use crate::security::{code as op, Session};
use bytes::Bytes;
use kafka_protocol::messages::describe_client_quotas_response::{EntityData, EntryData, ValueData};
use kafka_protocol::messages::{
    alter_client_quotas_response, AlterClientQuotasRequest, AlterClientQuotasResponse, ApiKey,
    DescribeClientQuotasRequest, DescribeClientQuotasResponse,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use std::sync::Arc;

error_codes!(DescribeClientQuotasResponse, DescribeClientQuotas, top error_code);
error_codes!(AlterClientQuotasResponse, AlterClientQuotas, list entries);

const MATCH_EXACT: i8 = 0;
const MATCH_DEFAULT: i8 = 1;
const MATCH_ANY: i8 = 2;

/// One filter component: the entity type and what its name must be (`None`: any name).
type Component = (String, Option<Option<String>>);

fn name_of<'a>(e: &'a Entity, kind: &str) -> Option<&'a Option<String>> {
    match kind {
        "user" => e.user.as_ref(),
        "client-id" => e.client_id.as_ref(),
        "ip" => e.ip.as_ref(),
        _ => None,
    }
}

/// Whether an entity passes the filter (`strict`: it has no other entity types).
fn matches(e: &Entity, filter: &[Component], strict: bool) -> bool {
    let ok = filter.iter().all(|(kind, want)| match name_of(e, kind) {
        None => false,
        Some(name) => want.as_ref().is_none_or(|w| w == name),
    });
    ok && (!strict || e.parts().len() == filter.len())
}

fn components(req: &DescribeClientQuotasRequest) -> Result<Vec<Component>, String> {
    let mut out: Vec<Component> = Vec::new();
    for c in &req.components {
        let kind = c.entity_type.to_string();
        if !["user", "client-id", "ip"].contains(&kind.as_str()) {
            return Err(format!("Custom entity type '{kind}' not supported"));
        }
        if out.iter().any(|(k, _)| *k == kind) {
            return Err(format!("Duplicate {kind} entity type in the filter"));
        }
        let want = match c.match_type {
            MATCH_EXACT => match &c._match {
                Some(m) => Some(Some(m.to_string())),
                None => return Err(format!("Exact match requires a name for {kind}")),
            },
            MATCH_DEFAULT => Some(None),
            MATCH_ANY => None,
            other => return Err(format!("Unknown match type {other}")),
        };
        out.push((kind, want));
    }
    let has = |k: &str| out.iter().any(|(kind, _)| kind == k);
    if has("ip") && (has("user") || has("client-id")) {
        return Err("Invalid entity filter component combination, IP filter component should not be used with user or clientId filter component.".into());
    }
    Ok(out)
}

pub async fn describe(
    broker: &Arc<Broker>,
    session: &Session,
    body: &mut Bytes,
    version: i16,
) -> HandlerResult {
    let req: DescribeClientQuotasRequest = decode(body, version, "DescribeClientQuotas")?;
    let mut resp = DescribeClientQuotasResponse::default();
    if !super::cluster_allowed(broker, session, op::DESCRIBE_CONFIGS) {
        resp.error_code = ec::CLUSTER_AUTHORIZATION_FAILED;
        resp.error_message = Some(StrBytes::from_static_str(
            "DescribeClientQuotas needs DescribeConfigs on the cluster",
        ));
        return encode(&resp, version).map(Some);
    }
    let filter = match components(&req) {
        Ok(f) => f,
        Err(m) => {
            resp.error_code = ec::INVALID_REQUEST;
            resp.error_message = Some(StrBytes::from_string(m));
            return encode(&resp, version).map(Some);
        }
    };
    let configs = broker.quota_configs();
    let entries = configs
        .iter()
        .filter(|(e, v)| !v.is_empty() && matches(e, &filter, req.strict))
        .map(|(e, values)| {
            EntryData::default()
                .with_entity(
                    e.parts()
                        .into_iter()
                        .map(|(kind, name)| {
                            EntityData::default()
                                .with_entity_type(StrBytes::from_static_str(kind))
                                .with_entity_name(name.map(StrBytes::from_string))
                        })
                        .collect(),
                )
                .with_values(
                    values
                        .iter()
                        .map(|(k, v)| {
                            ValueData::default()
                                .with_key(StrBytes::from_string(k.clone()))
                                .with_value(*v)
                        })
                        .collect(),
                )
        })
        .collect();
    resp.entries = Some(entries);
    encode(&resp, version).map(Some)
}

pub async fn alter(
    broker: &Arc<Broker>,
    session: &Session,
    body: &mut Bytes,
    version: i16,
) -> HandlerResult {
    let req: AlterClientQuotasRequest = decode(body, version, "AlterClientQuotas")?;
    let allowed = super::cluster_allowed(broker, session, op::ALTER_CONFIGS);
    let mut resp = AlterClientQuotasResponse::default();
    for entry in &req.entries {
        let parts: Vec<(String, Option<String>)> = entry
            .entity
            .iter()
            .map(|e| {
                (
                    e.entity_type.to_string(),
                    e.entity_name.as_ref().map(|n| n.to_string()),
                )
            })
            .collect();
        let outcome = if allowed {
            alter_one(broker, &parts, entry, req.validate_only).await
        } else {
            Err((
                ec::CLUSTER_AUTHORIZATION_FAILED,
                "AlterClientQuotas needs AlterConfigs on the cluster".into(),
            ))
        };
        let (code, msg) = match outcome {
            Ok(()) => (ec::NONE, None),
            Err((c, m)) => (c, Some(StrBytes::from_string(m))),
        };
        resp.entries.push(
            alter_client_quotas_response::EntryData::default()
                .with_error_code(code)
                .with_error_message(msg)
                .with_entity(
                    parts
                        .into_iter()
                        .map(|(kind, name)| {
                            alter_client_quotas_response::EntityData::default()
                                .with_entity_type(StrBytes::from_string(kind))
                                .with_entity_name(name.map(StrBytes::from_string))
                        })
                        .collect(),
                ),
        );
    }
    encode(&resp, version).map(Some)
}

async fn alter_one(
    broker: &Arc<Broker>,
    parts: &[(String, Option<String>)],
    entry: &kafka_protocol::messages::alter_client_quotas_request::EntryData,
    validate_only: bool,
) -> Result<(), (i16, String)> {
    let entity = Entity::from_parts(parts).map_err(|m| (ec::INVALID_REQUEST, m))?;
    let mut changes: BTreeMap<String, Option<f64>> = BTreeMap::new();
    for o in &entry.ops {
        let key = o.key.to_string();
        if changes.contains_key(&key) {
            return Err((
                ec::INVALID_REQUEST,
                format!("Duplicate quota key {key} not updating quota for entity"),
            ));
        }
        if o.remove {
            // Removing a key the entity type does not have is still refused (Kafka's check).
            crate::quota::validate(&entity, &key, 1.0).map_err(|m| (ec::INVALID_REQUEST, m))?;
            changes.insert(key, None);
        } else {
            crate::quota::validate(&entity, &key, o.value).map_err(|m| (ec::INVALID_REQUEST, m))?;
            changes.insert(key, Some(o.value));
        }
    }
    if validate_only {
        return Ok(());
    }
    broker.alter_quota(&entity, changes).await
}

/// KIP-599's `controller_mutation_rate` over one CreateTopics, CreatePartitions or DeleteTopics:
/// each partition created or deleted is one mutation. Strict (the versions KIP-599 added) a topic
/// is refused with THROTTLING_QUOTA_EXCEEDED while the client's rate is already over its quota
/// (so one request may pass it); before those versions every mutation is accepted and the client
/// only throttled. Either way the response carries the throttle time and the connection is muted.
pub(crate) struct MutationQuota<'a> {
    broker: &'a Broker,
    session: &'a Session,
    strict: bool,
    pub throttle_ms: i32,
}

impl<'a> MutationQuota<'a> {
    pub fn new(broker: &'a Broker, session: &'a Session, strict: bool) -> Self {
        MutationQuota {
            broker,
            session,
            strict,
            throttle_ms: 0,
        }
    }

    /// Whether one more topic may be changed now (strict versions only).
    pub fn check(&mut self) -> Result<(), (i16, String)> {
        if !self.strict || self.broker.quotas.is_empty() {
            return Ok(());
        }
        let key = crate::quota::CONTROLLER_MUTATION_RATE;
        let ms = self.session.charge_quota(&self.broker.quotas, key, 0.0);
        if ms == 0 {
            return Ok(());
        }
        self.throttle_ms = self.throttle_ms.max(ms);
        Err((
            ec::THROTTLING_QUOTA_EXCEEDED,
            "The throttling quota has been exceeded.".into(),
        ))
    }

    /// Counts `mutations` partitions created or deleted.
    pub fn record(&mut self, mutations: i32) {
        if mutations <= 0 || self.broker.quotas.is_empty() {
            return;
        }
        let key = crate::quota::CONTROLLER_MUTATION_RATE;
        let ms = self
            .session
            .charge_quota(&self.broker.quotas, key, f64::from(mutations));
        self.throttle_ms = self.throttle_ms.max(ms);
    }
}
