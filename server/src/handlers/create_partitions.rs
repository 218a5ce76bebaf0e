//! CreatePartitions: raise a topic's partition count.

use super::{decode, encode, HandlerResult};
use crate::broker::Broker;
use crate::error_code as ec;
use bytes::Bytes;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use std::sync::Arc;

pub async fn handle(
    broker: &Arc<Broker>,
    session: &crate::security::Session,
    body: &mut Bytes,
    version: i16,
) -> HandlerResult {
    let req: CreatePartitionsRequest = decode(body, version, "CreatePartitions")?;
    let mut results = Vec::new();
    for t in req.topics {
        let name = t.name.0.to_string();
        let res = if !super::topic_allowed(broker, session, crate::security::code::ALTER, &name) {
            Err((
                ec::TOPIC_AUTHORIZATION_FAILED,
                format!("{} may not alter topic {name}", session.principal()),
            ))
        } else if t.assignments.as_ref().is_some_and(|a| !a.is_empty()) {
            Err((
                ec::INVALID_REQUEST,
                "manual replica assignment is not supported".to_string(),
            ))
        } else {
            broker
                .create_partitions(&name, t.count, req.validate_only)
                .await
        };
        let mut r = CreatePartitionsTopicResult::default().with_name(t.name);
        if let Err((code, msg)) = res {
            r.error_code = code;
            r.error_message = super::refused("create partitions", &name, code, msg);
        }
        results.push(r);
    }
    encode(
        &CreatePartitionsResponse::default().with_results(results),
        version,
    )
    .map(Some)
}
